SELECT current_setting('mandate.token')
