SET search_path FROM CURRENT
