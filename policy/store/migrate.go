package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey serialises migrators across replicas: pg_advisory_xact_lock
// on this key is held for each migration's transaction. The value is
// arbitrary but fixed forever ("mandate" in ASCII).
const migrateLockKey int64 = 0x6d616e64617465

// Beginner starts transactions; *pgx.Conn and *pgxpool.Pool satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. File names
// are NNNN_description.sql; versions must be unique and positive.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v <= 0 || path.Ext(e.Name()) != ".sql" {
			return nil, fmt.Errorf("store: migration file %q is not named NNNN_description.sql", e.Name())
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("store: migrations %q and %q share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// Migrate brings the mandate schema up to date and returns the versions it
// applied (none when already current). Each migration runs in its own
// transaction holding a transaction-scoped advisory lock, so replicas that
// start together apply each migration exactly once: the second waits, then
// finds it recorded in mandate.schema_migrations. Versions in the database
// that this binary does not know (a newer replica migrated) are left alone.
func Migrate(ctx context.Context, db Beginner) (applied []int, err error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	for {
		v, err := migrateNext(ctx, db, ms)
		if err != nil {
			return applied, err
		}
		if v == 0 {
			return applied, nil
		}
		applied = append(applied, v)
	}
}

// migrateNext applies the first pending migration, returning its version,
// or 0 when none is pending.
func migrateNext(ctx context.Context, db Beginner, ms []migration) (int, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit

	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return 0, fmt.Errorf("store: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		CREATE SCHEMA IF NOT EXISTS mandate;
		CREATE TABLE IF NOT EXISTS mandate.schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
		return 0, fmt.Errorf("store: migrate: bookkeeping: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM mandate.schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	for _, m := range ms {
		if slices.Contains(done, int32(m.version)) {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return 0, fmt.Errorf("store: migrate: %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO mandate.schema_migrations (version) VALUES ($1)", m.version); err != nil {
			return 0, fmt.Errorf("store: migrate: %s: %w", m.name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, fmt.Errorf("store: migrate: %s: commit: %w", m.name, err)
		}
		return m.version, nil
	}
	return 0, tx.Commit(ctx)
}
