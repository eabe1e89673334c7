SELECT * FROM pg_temp.accounts a JOIN pg_temp.accounts b USING (id)
