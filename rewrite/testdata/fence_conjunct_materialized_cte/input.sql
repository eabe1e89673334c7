WITH v AS MATERIALIZED (SELECT 1 AS n, 70000 AS b) SELECT count(*) FROM v JOIN accounts t ON t.id = v.n::int4 WHERE t.iban = 'NL9' OR v.b::int2 IS NULL
