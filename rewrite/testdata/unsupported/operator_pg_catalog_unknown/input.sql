SELECT 'a' OPERATOR(pg_catalog.<?>) 'b'
