SELECT 'a' OPERATOR(public.<?>) 'b'
