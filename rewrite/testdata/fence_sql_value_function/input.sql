SELECT count(*) FROM transactions t WHERE t.id <> 17 OR sqrt(date_part('epoch', LOCALTIMESTAMP) - 1e12) IS NULL
