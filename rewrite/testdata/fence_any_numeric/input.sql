SELECT id FROM accounts WHERE balance = ANY('{2,3}')
