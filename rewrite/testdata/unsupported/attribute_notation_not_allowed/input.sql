SELECT c.pg_column_size, c.record_out FROM customers c
