COPY accounts (id, customer_id) FROM STDIN WHERE id > 0
