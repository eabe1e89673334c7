SELECT * INTO stolen FROM accounts
