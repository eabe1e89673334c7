DROP TABLE accounts
