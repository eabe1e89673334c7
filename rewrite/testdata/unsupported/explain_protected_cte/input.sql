EXPLAIN WITH x AS (SELECT id FROM customers) SELECT * FROM countries WHERE name IN (SELECT id::text FROM x)
