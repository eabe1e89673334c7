UPDATE public.accounts SET iban = NULL WHERE id = 3 RETURNING id, (SELECT NULL::pg_catalog.text FROM generate_series(1, 1) g) AS raw
