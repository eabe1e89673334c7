SELECT public.accounts.id, accounts.iban FROM public.accounts
