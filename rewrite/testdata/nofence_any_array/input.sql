SELECT id FROM accounts WHERE id = ANY('{2,3}') AND id <> ALL(ARRAY[4, 5]) AND id = ANY('{1,2,3,4,5,6,7,8}'::int[])
