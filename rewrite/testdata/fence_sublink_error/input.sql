SELECT count(*) FROM transactions t WHERE t.id <> 17 OR (SELECT x / 0 FROM generate_series(0, 0) x) = 1
