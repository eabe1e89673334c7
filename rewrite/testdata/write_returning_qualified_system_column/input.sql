UPDATE customers c SET email = email WHERE id = 1 RETURNING c.ctid
