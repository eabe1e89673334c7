SELECT  *  FROM public.countries   -- kept byte for byte
