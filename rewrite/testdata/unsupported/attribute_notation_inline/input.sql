SELECT customers.to_jsonb FROM customers
