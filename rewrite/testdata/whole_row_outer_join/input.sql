SELECT k.code, a, row_to_json(a.*) FROM countries k LEFT JOIN accounts a ON a.iban = k.name
