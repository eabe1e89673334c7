SELECT c, a FROM customers c FULL JOIN accounts a ON a.customer_id = c.id
