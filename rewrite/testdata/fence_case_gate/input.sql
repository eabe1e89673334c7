SELECT count(*) FROM accounts a WHERE a.iban >= 'NL9' AND a.iban < 'NLA' AND (CASE WHEN a.id IS NOT NULL THEN 'x'::char(10485760) END)::text IS NOT NULL
