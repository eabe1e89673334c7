SELECT * FROM accounts WHERE id = 1 AND random() < 0.5
