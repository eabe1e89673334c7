SELECT id FROM accounts WHERE id = 104 AND iban >= 'NL9' AND iban < safe_fn('z')
