WITH accounts AS (SELECT 1 AS id) SELECT * FROM accounts
