SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.customer_id = c.id) AND NOT EXISTS (SELECT FROM countries s WHERE false)
