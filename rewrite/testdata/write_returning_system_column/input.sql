UPDATE accounts SET iban = NULL WHERE id = 3 RETURNING ctid, xmin
