SELECT 1 OPERATOR(public.===) 2
