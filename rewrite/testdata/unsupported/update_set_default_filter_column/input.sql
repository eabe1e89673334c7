UPDATE accounts SET customer_id = DEFAULT WHERE id = 1
