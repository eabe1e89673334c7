EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM public.countries WHERE code = 'DE'
