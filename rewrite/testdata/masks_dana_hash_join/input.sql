SELECT c.email, a.balance FROM customers c JOIN accounts a ON a.customer_id = c.id
