SELECT id FROM accounts WHERE id = 104 AND (iban IS NULL OR customer_id IS NOT NULL) AND NOT (iban = 'x' OR iban = 'y')
