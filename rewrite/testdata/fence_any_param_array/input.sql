SELECT id FROM accounts WHERE id = ANY($1)
