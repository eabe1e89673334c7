SELECT id, iban FROM accounts WHERE id = $1
