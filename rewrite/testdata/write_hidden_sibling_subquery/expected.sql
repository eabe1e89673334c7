UPDATE public.accounts SET iban = NULL WHERE id = 3 RETURNING (SELECT x FROM (SELECT 1 AS iban) a, (SELECT NULL::pg_catalog.text AS x) b) AS raw
