LOCK TABLE accounts
