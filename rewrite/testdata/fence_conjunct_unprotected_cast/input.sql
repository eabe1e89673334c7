SELECT count(*) FROM (SELECT 1 AS n, 70000 AS b OFFSET 0) v JOIN accounts t ON t.id = v.n::int4 AND t.iban = 'NL9' AND (t.iban IS NULL OR v.b::int2 IS NULL)
