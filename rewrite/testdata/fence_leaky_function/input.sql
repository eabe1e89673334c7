SELECT * FROM customers WHERE leak(ssn)
