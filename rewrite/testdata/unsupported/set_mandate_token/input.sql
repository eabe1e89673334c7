SET mandate.token = 'x'
