SELECT * FROM customers WHERE id IN (SELECT customer_id FROM accounts WHERE id = 10)
