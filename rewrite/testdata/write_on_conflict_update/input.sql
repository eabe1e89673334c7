INSERT INTO accounts AS a (id, customer_id, balance) VALUES (1, 1, 5) ON CONFLICT (id) DO UPDATE SET balance = a.balance + excluded.balance WHERE a.iban IS NOT NULL RETURNING a.id
