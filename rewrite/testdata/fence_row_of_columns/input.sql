SELECT count(a.id) FROM generate_series(1, 50000) g LEFT JOIN accounts a ON a.id = 104 AND CASE WHEN a.iban = 'NL9' THEN ROW(a.iban, a.iban) END IS NOT NULL
