SELECT count(*) FROM transactions t WHERE t.id < 40 OR 'x'::text::date IS NULL
