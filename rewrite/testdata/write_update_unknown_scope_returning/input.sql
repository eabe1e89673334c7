UPDATE accounts SET iban = NULL WHERE id = 3 RETURNING id, (SELECT iban FROM generate_series(1, 1) g) AS raw
