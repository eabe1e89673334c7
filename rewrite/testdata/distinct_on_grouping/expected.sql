SELECT DISTINCT ON (customer_id) customer_id, id FROM public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1 GROUP BY GROUPING SETS ((customer_id, id), ()) ORDER BY customer_id
