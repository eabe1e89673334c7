SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR to_date('x', 'YYYY') IS NULL
