INSERT INTO audit_log (id, note) SELECT id, iban FROM accounts
