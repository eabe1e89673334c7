UPDATE public.accounts SET iban = NULL WHERE id = 3 RETURNING id, (SELECT NULL::pg_catalog.text FROM ((SELECT 1 AS iban) a CROSS JOIN (SELECT 2) b ) j(p, q)) AS raw
