SELECT * FROM ONLY accounts
