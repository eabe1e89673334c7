UPDATE public.accounts SET iban = 'DE00' WHERE id = 5 AND (accounts.customer_id OPERATOR(pg_catalog.=) 1 AND accounts.balance OPERATOR(pg_catalog.>=) '0'::numeric)
