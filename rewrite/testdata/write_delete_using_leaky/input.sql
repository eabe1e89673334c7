DELETE FROM accounts a USING countries c WHERE leak(a.iban) AND c.code = 'DE'
