SELECT id FROM public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1 AND (id = 104 AND (iban IS NULL OR customer_id IS NOT NULL) AND NOT (iban = 'x' OR iban = 'y'))
