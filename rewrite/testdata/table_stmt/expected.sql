SELECT * FROM public.transactions WHERE transactions.account_id OPERATOR(pg_catalog.=) 10 OR transactions.account_id OPERATOR(pg_catalog.=) 11
