SELECT * FROM support_tickets
