SELECT id FROM (SELECT _m1.id, _m1.customer_id, _m1.iban, _m1.balance, _m1.opened_at FROM public.accounts _m1 WHERE _m1.customer_id OPERATOR(pg_catalog.=) 1 OFFSET 0) accounts WHERE id = ANY($1)
