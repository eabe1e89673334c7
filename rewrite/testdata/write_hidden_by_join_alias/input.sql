UPDATE accounts SET iban = NULL WHERE id = 3 RETURNING id, (SELECT iban FROM ((SELECT 1 AS iban) a CROSS JOIN (SELECT 2) b) AS j(p, q)) AS raw
