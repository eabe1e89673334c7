SELECT statement FROM pg_catalog.pg_cursors
