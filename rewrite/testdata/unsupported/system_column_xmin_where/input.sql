SELECT id FROM accounts WHERE xmin::text = '1'
