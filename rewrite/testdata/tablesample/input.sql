SELECT * FROM transactions TABLESAMPLE bernoulli (10)
