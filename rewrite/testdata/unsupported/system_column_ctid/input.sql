SELECT ctid, id FROM transactions
