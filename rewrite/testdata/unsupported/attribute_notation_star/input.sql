SELECT (t.*).to_jsonb FROM transactions t
