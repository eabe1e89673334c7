SELECT c.to_jsonb ->> 'ssn' AS ssn FROM customers c WHERE c.id = 2
