SELECT c.reltuples::bigint FROM pg_catalog.pg_class c WHERE c.relname = 'accounts' AND c.relnamespace = 'public'::regnamespace
