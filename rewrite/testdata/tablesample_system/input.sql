SELECT count(*) FROM transactions TABLESAMPLE SYSTEM (50)
