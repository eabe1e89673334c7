SELECT set_config('role', 'admin', false)
