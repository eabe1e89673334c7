NOTIFY mandate_state, '{"user":"bob"}'
