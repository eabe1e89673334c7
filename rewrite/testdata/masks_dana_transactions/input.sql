SELECT merchant, avg(amount) FROM transactions GROUP BY 1
