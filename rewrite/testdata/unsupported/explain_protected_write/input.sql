EXPLAIN ANALYZE UPDATE accounts SET iban = 'x' WHERE id = 1
