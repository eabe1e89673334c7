UPDATE accounts SET iban = NULL WHERE id = 3 AND EXISTS (SELECT 1 FROM generate_series(1, 1) g WHERE iban LIKE 'DE%')
