SELECT upper(name), length(ssn) FROM customers WHERE id = 1
