UPDATE accounts SET balance = 0 WHERE iban = 'x'
