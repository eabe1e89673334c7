INSERT INTO accounts (id, customer_id) OVERRIDING USER VALUE VALUES (9, 1)
