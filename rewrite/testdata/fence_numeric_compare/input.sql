SELECT * FROM accounts WHERE balance > 100
