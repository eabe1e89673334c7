SELECT relname, reltuples, relpages, relallvisible FROM pg_class WHERE relname = 'accounts'
