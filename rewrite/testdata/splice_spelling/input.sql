/* keep me */ SELECT a.iban   -- trailing
FROM ONLY Accounts AS a(i, c) JOIN "customers" ON customers.id = a.c, countries * k WHERE k.code = 'DE'; SELECT * FROM ONLY (transactions) t -- last
