EXPLAIN (COSTS OFF) SELECT count(*) FROM transactions t JOIN countries k ON true
