SELECT a.id, (SELECT count(*) FROM transactions t WHERE t.account_id = a.id) AS n FROM accounts a
