INSERT INTO accounts VALUES (7, 1, 'DE7')
