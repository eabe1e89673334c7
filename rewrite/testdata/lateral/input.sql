SELECT * FROM customers c, LATERAL (SELECT * FROM accounts a WHERE a.customer_id = c.id) x
