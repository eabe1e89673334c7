WITH big AS (SELECT * FROM transactions WHERE amount > 100) SELECT count(*) FROM big
