NOTIFY jobs, 'hi'; LISTEN jobs; UNLISTEN jobs; UNLISTEN *; SELECT pg_notify('jobs', 'x')
