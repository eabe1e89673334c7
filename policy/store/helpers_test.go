package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// newCluster starts a throwaway PostgreSQL and returns it with the
// superuser DSN; the mandate schema is not yet migrated.
func newCluster(t testing.TB) (*pgtest.Cluster, string) {
	t.Helper()
	c := pgtest.Start(t, pgtest.Options{})
	return c, c.DSN("postgres", "postgres")
}

// migrated starts a cluster with the schema in place.
func migrated(t testing.TB) (*pgtest.Cluster, string) {
	t.Helper()
	c, dsn := newCluster(t)
	if _, err := Migrate(context.Background(), connect(t, dsn)); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return c, dsn
}

func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func connConfig(t testing.TB, dsn string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	return cfg
}

// watch starts s.Watch for the rest of the test and waits for its first
// read.
func watch(t testing.TB, s *State) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx) //nolint:errcheck // returns ctx.Err()
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("state never became ready")
	}
}

// eventually polls cond until it holds or the deadline passes. For waits on
// asynchronous delivery (NOTIFY, reconnects) only, never for logic.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
