TRUNCATE accounts
