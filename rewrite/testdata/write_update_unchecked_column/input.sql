UPDATE accounts SET iban = 'DE00' WHERE id = 5
