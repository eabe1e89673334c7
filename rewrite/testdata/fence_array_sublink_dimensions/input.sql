SELECT id FROM accounts WHERE id = 104 AND (customer_id <> 3 OR ARRAY(SELECT x FROM (VALUES ('{1}'::int[]),('{1,2}'::int[])) v(x)) IS NULL)
