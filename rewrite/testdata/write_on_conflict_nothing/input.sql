INSERT INTO accounts (id, customer_id) VALUES (1, 1) ON CONFLICT (id) DO NOTHING
