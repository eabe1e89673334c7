SELECT * FROM accounts NATURAL JOIN transactions JOIN customers USING (id)
