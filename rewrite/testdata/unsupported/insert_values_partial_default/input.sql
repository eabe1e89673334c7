INSERT INTO accounts (id, customer_id, iban) VALUES (1, 1, DEFAULT), (2, 1, 'x')
