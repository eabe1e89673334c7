SELECT * FROM pg_temp_3.accounts a JOIN pg_temp.accounts b USING (id)
