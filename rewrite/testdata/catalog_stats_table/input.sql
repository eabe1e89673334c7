TABLE pg_catalog.pg_class
