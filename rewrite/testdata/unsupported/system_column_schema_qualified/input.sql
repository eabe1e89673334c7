SELECT public.accounts.xmax FROM public.accounts
