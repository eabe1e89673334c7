SELECT pg_notify('Mandate_state', 'x')
