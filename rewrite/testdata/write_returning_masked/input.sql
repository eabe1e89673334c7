UPDATE accounts SET iban = NULL WHERE id = 3 RETURNING *, iban AS old_style
