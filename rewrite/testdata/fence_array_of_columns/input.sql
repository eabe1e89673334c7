SELECT id FROM accounts WHERE id = 104 AND CASE WHEN iban = 'NL9' THEN ARRAY[iban, iban, iban] END IS NOT NULL
