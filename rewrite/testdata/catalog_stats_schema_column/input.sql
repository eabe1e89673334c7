SELECT pg_catalog.pg_class.reltuples FROM pg_catalog.pg_class WHERE pg_catalog.pg_class.relname = 'accounts'
