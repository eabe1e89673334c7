SELECT count(*) FROM (SELECT 1 AS n, '{1}'::int[] AS a1, '{{1}}'::int[] AS a2 OFFSET 0) v JOIN accounts t ON t.id = v.n::int4 AND (t.iban IS NULL OR ARRAY[v.a1, v.a2] IS NULL)
