SELECT c, c.*, row_to_json(c) FROM customers c
