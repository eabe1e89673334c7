SELECT query FROM pg_stat_statements
