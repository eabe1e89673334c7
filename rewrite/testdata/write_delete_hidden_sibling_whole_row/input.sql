DELETE FROM accounts RETURNING (SELECT x FROM (SELECT 1 AS accounts) a, (SELECT accounts::text AS x) b) AS deleted
