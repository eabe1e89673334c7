UPDATE accounts SET iban = NULL
