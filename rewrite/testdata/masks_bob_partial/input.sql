SELECT iban FROM accounts; SELECT * FROM transactions WHERE category = 'tax'
