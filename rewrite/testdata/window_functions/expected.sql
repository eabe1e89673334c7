SELECT id, sum(balance) OVER (PARTITION BY customer_id ORDER BY id), row_number() OVER w FROM public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1 WINDOW w AS (ORDER BY opened_at)
