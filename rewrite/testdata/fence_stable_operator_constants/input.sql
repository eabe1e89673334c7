SELECT count(*) FROM transactions t WHERE t.id <> 17 OR timestamptz '294276-01-01' + interval '1000 years' IS NULL
