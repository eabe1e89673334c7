SELECT id FROM customers ORDER BY customers.ssn, id DESC LIMIT 3
