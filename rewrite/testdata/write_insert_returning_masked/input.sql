INSERT INTO accounts (id, customer_id) VALUES (9, 1) RETURNING accounts.*
