WITH c AS (SELECT * FROM customers) SELECT * FROM c WHERE lower(c.name) = 'x'
