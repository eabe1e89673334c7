SELECT category, count(*), sum(amount) FROM transactions GROUP BY category HAVING count(*) > 1 ORDER BY 2 DESC
