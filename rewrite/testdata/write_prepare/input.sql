PREPARE p AS UPDATE accounts SET customer_id = $1 WHERE id = $2
