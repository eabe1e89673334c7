SELECT * FROM mandate.mask_keys
