SELECT id FROM accounts a WHERE a.leak
