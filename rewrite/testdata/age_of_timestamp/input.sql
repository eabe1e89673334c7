SELECT age(opened_at), age(opened_at::date) FROM accounts
