SELECT * FROM (SELECT * FROM customers) s WHERE leak(s.ssn)
