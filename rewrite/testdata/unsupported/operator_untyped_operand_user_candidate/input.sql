SELECT name FROM customers WHERE lower(name) ~ 'x'
