UPDATE audit_log SET note = a.iban FROM accounts a WHERE a.id = audit_log.id
