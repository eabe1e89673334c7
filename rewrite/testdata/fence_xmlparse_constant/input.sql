SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR xmlparse(document '<') IS NULL
