DELETE FROM accounts RETURNING (SELECT accounts FROM (VALUES (1)) v)::text AS deleted
