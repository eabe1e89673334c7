DELETE FROM accounts WHERE id = 5
