SELECT DISTINCT ON (ssn) id FROM customers
