SELECT name, statement FROM pg_prepared_statements
