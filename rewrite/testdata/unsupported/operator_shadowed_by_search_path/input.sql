SELECT id + 1 FROM accounts
