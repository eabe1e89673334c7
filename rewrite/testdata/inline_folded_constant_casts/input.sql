SELECT count(*) FROM transactions t WHERE t.id <> 17 OR '2024-01-01'::date IS NULL OR 5::int8::text IS NULL OR $1::int4 IS NULL
