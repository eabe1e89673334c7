SELECT pid, relation FROM pg_locks
