DELETE FROM accounts WHERE EXISTS (SELECT 1 FROM generate_series(1, 1) g WHERE balance > 1000)
