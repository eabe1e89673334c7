SELECT pg_typeof(t), t.id FROM transactions t WHERE t IS NOT NULL ORDER BY t
