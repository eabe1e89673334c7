UPDATE accounts SET customer_id = 2, balance = balance - 10 WHERE id = 5
