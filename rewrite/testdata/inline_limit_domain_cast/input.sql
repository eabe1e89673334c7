SELECT id FROM transactions t WHERE t.id = 17 LIMIT 1::information_schema.cardinal_number
