SELECT a FROM accounts a, (SELECT 1 AS x) s; SELECT name FROM customers name; SELECT (a).iban FROM accounts a
