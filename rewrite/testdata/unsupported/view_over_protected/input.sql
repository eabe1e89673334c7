SELECT * FROM account_summary
