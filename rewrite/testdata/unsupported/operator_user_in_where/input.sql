SELECT name FROM customers WHERE name <?> 'x'
