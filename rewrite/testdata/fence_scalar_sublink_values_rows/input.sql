SELECT count(*) FROM transactions WHERE account_id <> 110 OR (SELECT x FROM (VALUES (1),(2)) v(x)) IS NULL
