SELECT * FROM ts_stat('select ssn::tsvector from customers')
