SELECT * FROM accounts WHERE id = 500
