SELECT * FROM countries WHERE leak((SELECT ssn FROM customers LIMIT 1))
