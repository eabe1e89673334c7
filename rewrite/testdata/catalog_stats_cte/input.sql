WITH c AS (SELECT * FROM pg_class) SELECT relname, reltuples FROM c WHERE relname = 'accounts'
