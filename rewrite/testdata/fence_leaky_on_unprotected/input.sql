SELECT * FROM accounts a, countries c WHERE lower(c.name) = 'x' AND a.id = 1
