// Package conformance runs real PostgreSQL clients — psql, pgx, node-postgres,
// psycopg2 and the JDBC driver — through an enforcing mandate in front of the
// bank world (testdata/bank) and compares each client's normalized transcript
// with a golden file. It also keeps docs/config.md in step with the flags of
// `mandate serve`.
//
// The package has only tests. The clients are external programs; a missing
// one fails the test with what to install (.ci/run installs them all), never
// skips it.
package conformance
