SELECT accounts.id, accounts.customer_id, accounts.iban, accounts.balance, accounts.opened_at FROM ONLY public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1
