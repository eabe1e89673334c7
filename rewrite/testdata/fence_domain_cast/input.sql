SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR (-1)::information_schema.cardinal_number IS NULL
