INSERT INTO accounts (id, customer_id, iban, opened_at) VALUES (1, 1, 'DE1', DEFAULT), (2, '1', NULL, DEFAULT) RETURNING id
