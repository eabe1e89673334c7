WITH d AS (DELETE FROM public.accounts WHERE id = 1 AND (accounts.customer_id OPERATOR(pg_catalog.=) 1 AND accounts.balance OPERATOR(pg_catalog.=) 0) RETURNING *) SELECT * FROM d
