SELECT mandate.mask_hash('x', 'customer')
