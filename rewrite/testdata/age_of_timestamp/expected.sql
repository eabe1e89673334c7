SELECT age(opened_at), age(opened_at::date) FROM public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1
