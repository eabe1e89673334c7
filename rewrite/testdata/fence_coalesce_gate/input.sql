SELECT count(*) FROM accounts a WHERE a.iban = 'NL91ABNA0417164303' AND COALESCE(NULLIF(a.id IS NOT NULL, true), ('x'::char(10485760))::text IS NOT NULL)
