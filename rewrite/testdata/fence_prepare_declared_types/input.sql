PREPARE p(oid[]) AS SELECT id FROM accounts WHERE id = ANY($1)
