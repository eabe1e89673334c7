SELECT ROW(c.*) FROM customers c
