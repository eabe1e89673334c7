SELECT DISTINCT ON (customer_id) customer_id, id FROM accounts GROUP BY GROUPING SETS ((customer_id, id), ()) ORDER BY customer_id
