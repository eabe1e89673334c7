COPY accounts (id, iban) TO STDOUT WITH (FORMAT csv)
