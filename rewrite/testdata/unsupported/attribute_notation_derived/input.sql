SELECT s.to_jsonb FROM (SELECT * FROM customers) s JOIN accounts a ON a.customer_id = s.id
