SELECT * FROM public.country_names
