SELECT a.id, t.amount FROM accounts a JOIN transactions t ON t.account_id = a.id WHERE a.id = 10
