package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const execTimeout = time.Minute

// ExecContext runs sql, which may hold several statements, as the postgres
// superuser on database "postgres" over a fresh unix-socket connection.
func (c *Cluster) ExecContext(ctx context.Context, sql string) error {
	conn, err := pgconn.Connect(ctx, c.DSN("postgres", "postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: %s: %w", abbreviate(sql), err)
	}
	return nil
}

// Exec is ExecContext for tests: an error fails tb.
func (c *Cluster) Exec(tb testing.TB, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	if err := c.ExecContext(ctx, sql); err != nil {
		tb.Fatal(err)
	}
}

// CreateDB creates database name, owned by postgres; an error fails tb.
func (c *Cluster) CreateDB(tb testing.TB, name string) {
	tb.Helper()
	c.Exec(tb, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

func abbreviate(sql string) string {
	if len(sql) > 80 {
		return sql[:77] + "..."
	}
	return sql
}
