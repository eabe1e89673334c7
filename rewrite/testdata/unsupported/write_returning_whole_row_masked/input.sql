UPDATE accounts SET iban = NULL RETURNING accounts
