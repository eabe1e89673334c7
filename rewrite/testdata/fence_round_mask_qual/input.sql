SELECT id FROM accounts a WHERE a.id = 107 AND a.balance IS NULL
