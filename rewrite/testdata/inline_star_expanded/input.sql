SELECT *, c.* FROM customers c ORDER BY id LIMIT 5
