EXPLAIN SELECT * FROM transactions WHERE amount > 10
