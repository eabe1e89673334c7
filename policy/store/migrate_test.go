package store

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMigrationsWellFormed(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %s has version %d, want %d (no gaps)", m.name, m.version, i+1)
		}
	}
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	_, dsn := newCluster(t)
	conn := connect(t, dsn)

	applied, err := Migrate(ctx, conn)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	ms, _ := migrations()
	if len(applied) != len(ms) || applied[0] != 1 {
		t.Fatalf("first Migrate applied %v, want all %d", applied, len(ms))
	}
	applied, err = Migrate(ctx, conn)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", applied, err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM mandate.schema_migrations").Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(ms))
	}
}

// Two replicas starting at once: each migration is applied exactly once and
// neither fails.
func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	_, dsn := newCluster(t)
	const replicas = 4
	conns := make([]*pgx.Conn, replicas)
	for i := range conns {
		conns[i] = connect(t, dsn)
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []int
	)
	for i := range replicas {
		wg.Go(func() {
			applied, err := Migrate(ctx, conns[i])
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
			mu.Lock()
			all = append(all, applied...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	ms, _ := migrations()
	want := make([]int, len(ms))
	for i, m := range ms {
		want[i] = m.version
	}
	if !slices.Equal(all, want) {
		t.Fatalf("replicas together applied %v, want each of %v exactly once", all, want)
	}
}
