SELECT count(*) FROM (SELECT $1::oid) s, transactions t WHERE t.id = $1
