SELECT id AS ssn, name FROM customers ORDER BY ssn
