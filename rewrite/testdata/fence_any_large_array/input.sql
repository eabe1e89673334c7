SELECT id FROM accounts WHERE id = ANY('{1,2,3,4,5,6,7,8,9}') OR id IN (1, 2, 3, 4, 5, 6, 7, 8, 9)
