SELECT * FROM customers WHERE name = 'alice' AND email <> 'x' AND birth_date >= '2000-01-01'::date
