SELECT count(*) FROM (SELECT 1 AS n, 'x'::char(10485760) AS x OFFSET 0) v JOIN accounts t ON t.id = v.n::int4 AND t.iban = 'NL9' AND (t.iban IS NULL OR v.x::text IS NOT NULL)
