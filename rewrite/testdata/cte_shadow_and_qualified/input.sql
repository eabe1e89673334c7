WITH accounts AS (SELECT 1 AS id) SELECT * FROM accounts, public.accounts pa WHERE pa.id = accounts.id
