SELECT * FROM accounts a, countries c FOR UPDATE OF c
