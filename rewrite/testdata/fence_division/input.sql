SELECT * FROM accounts WHERE 1 / (id - 1000) > 0
