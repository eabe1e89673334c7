WITH countries AS (SELECT code FROM public.countries), x AS (SELECT * FROM public.audit_log) SELECT * FROM countries, x, information_schema.tables t WHERE t.table_name = countries.code
