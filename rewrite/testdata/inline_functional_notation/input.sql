SELECT ssn(c) FROM customers c
