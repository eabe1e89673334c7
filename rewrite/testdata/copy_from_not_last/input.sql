COPY accounts (id, customer_id) FROM STDIN; SELECT 1
