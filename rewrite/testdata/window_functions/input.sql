SELECT id, sum(balance) OVER (PARTITION BY customer_id ORDER BY id), row_number() OVER w FROM accounts WINDOW w AS (ORDER BY opened_at)
