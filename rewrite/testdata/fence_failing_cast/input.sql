SELECT * FROM customers WHERE ssn::int = 5
