SELECT id FROM accounts WHERE id = ANY($1) OR id = $2
