SET search_path = public, 42
