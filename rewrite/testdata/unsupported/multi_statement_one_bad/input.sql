SELECT * FROM countries; SELECT * FROM support_tickets
