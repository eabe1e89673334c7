SELECT * FROM accounts WHERE EXISTS (SELECT 1 FROM support_tickets)
