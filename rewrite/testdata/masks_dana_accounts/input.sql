SELECT * FROM accounts WHERE opened_at > now() - interval '1 year'
