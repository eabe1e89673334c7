SELECT row_to_json(c), c FROM pg_class c WHERE c.relname = 'accounts'
