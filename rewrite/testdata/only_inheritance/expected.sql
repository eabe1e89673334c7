SELECT * FROM ONLY public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1
