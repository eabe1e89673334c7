SELECT * FROM public.countries WHERE code = 'DE'
