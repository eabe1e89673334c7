UPDATE accounts SET (customer_id, balance) = (SELECT 1, 0) WHERE id = 1
