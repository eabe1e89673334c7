COPY public.accounts(id, customer_id) FROM STDIN WHERE CASE WHEN id > 0 THEN mandate.deny_unless(customer_id OPERATOR(pg_catalog.=) 1, 'public.accounts') ELSE false END
