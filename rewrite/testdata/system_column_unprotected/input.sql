SELECT ctid, tableoid::regclass, code FROM countries; SELECT k.xmin FROM countries k JOIN accounts a ON a.iban = k.name
