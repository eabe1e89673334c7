SELECT 1; COPY public.audit_log FROM STDIN
