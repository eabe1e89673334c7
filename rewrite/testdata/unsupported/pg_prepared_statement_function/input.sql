SELECT * FROM pg_prepared_statement()
