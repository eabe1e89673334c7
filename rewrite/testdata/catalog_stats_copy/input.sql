COPY pg_class (relname, reltuples) TO STDOUT
