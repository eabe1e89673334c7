UPDATE accounts SET iban = NULL WHERE id = 3 AND EXISTS (SELECT 1 FROM (SELECT 1 AS iban) a, (VALUES (1)) l JOIN (VALUES (2)) r ON iban LIKE 'DE%')
