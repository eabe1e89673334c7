SELECT a.id, c.reltuples FROM accounts a JOIN pg_class c ON c.relname = 'accounts' WHERE leak(a.iban)
