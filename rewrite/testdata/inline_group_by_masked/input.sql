SELECT ssn, count(*) FILTER (WHERE ssn = 'x') FROM customers GROUP BY ssn HAVING max(ssn) <> ''
