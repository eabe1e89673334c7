INSERT INTO accounts (id, customer_id, balance) SELECT id, 1, 0 FROM audit_log
