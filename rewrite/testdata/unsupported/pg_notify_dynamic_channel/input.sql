SELECT pg_notify(name, 'x') FROM countries
