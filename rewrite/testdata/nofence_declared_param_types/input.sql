SELECT id FROM accounts WHERE id = $1 OR id = $2
