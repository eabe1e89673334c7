// Package pgtest starts throwaway PostgreSQL clusters for tests, benchmarks
// and demo programs, using the server binaries installed on the machine.
//
// It never mocks: every Cluster is a real postgres process with its own data
// directory, unix socket directory and TCP port on 127.0.0.1, so proxy,
// policy and rewrite tests see exactly what production sees (authentication,
// TLS, errors, catalog).
//
// Clusters are cheap. initdb runs once per PostgreSQL major version and user
// into a template directory under os.TempDir() that every test package and
// every run shares (guarded by a file lock); each cluster is a copy of that
// template, started with durability switched off (fsync, synchronous_commit
// and full_page_writes are off). MANDATE_PGTEST_DIR moves templates and
// clusters elsewhere, e.g. to /dev/shm, where starting is faster but the
// data lives in memory. Typical use:
//
//	c := pgtest.Start(t, pgtest.Options{})
//	c.Exec(t, `CREATE ROLE alice LOGIN PASSWORD 'secret'`)
//	conn, err := pgx.Connect(ctx, c.TCPDSN("alice", "secret", "postgres"))
//
// Binaries come from the highest version in /usr/lib/postgresql/*/bin, or from
// the directory named by MANDATE_PG_BIN. Without them, Start fails the test;
// it never skips.
//
// PostgreSQL refuses to run as root. When the test runs as root, pgtest runs
// initdb and postgres as the "postgres" system user and hands it the cluster
// directories.
//
// A cluster's server is killed when the process that started it dies (parent
// death signal), but its directories are removed only by Stop, which Start
// registers with tb.Cleanup.
package pgtest
