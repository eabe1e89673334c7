SELECT id FROM accounts WHERE id = 104 AND ARRAY[CASE WHEN customer_id = 3 THEN '{{1}}'::int[] ELSE '{1}'::int[] END, '{1}'::int[]] IS NOT NULL
