SELECT * FROM pg_temp.accounts
