SELECT id FROM accounts WHERE id = 104 AND iban < 'z'::varchar(10485760)
