SELECT * FROM customers WHERE safe_fn(ssn) AND id = 3
