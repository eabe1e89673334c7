UPDATE accounts SET (customer_id, iban) = ($1, 'x'), (opened_at) = ROW(now()) WHERE id = $2
