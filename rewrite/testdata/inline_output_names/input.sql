SELECT ssn, ssn::text, c.ssn AS s2, upper(ssn), CASE WHEN id = 1 THEN 'x' ELSE ssn END, ssn COLLATE "C" FROM customers c WHERE id = 1
