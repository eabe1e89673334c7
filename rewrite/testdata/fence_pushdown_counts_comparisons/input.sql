SELECT id FROM accounts WHERE id NOT IN (-1, -2, -3) AND id NOT IN (-4, -5, -6) AND lower(iban) = 'x'
