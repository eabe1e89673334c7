UPDATE accounts SET iban = 'x' WHERE CURRENT OF c
