SELECT xmin, relname FROM pg_class
