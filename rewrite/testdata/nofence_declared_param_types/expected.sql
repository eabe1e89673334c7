SELECT id FROM public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1 AND (id = $1 OR id = $2)
