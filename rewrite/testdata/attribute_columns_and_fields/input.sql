SELECT c.id, (c).ssn, (c.*).email, s.n, s.upper FROM customers c JOIN (SELECT id AS n, upper(name) FROM customers) s ON s.n = c.id
