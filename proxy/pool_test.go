package proxy

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// backendPID is the upstream backend serving conn.
func backendPID(t testing.TB, conn *pgx.Conn) int {
	t.Helper()
	var pid int
	if err := conn.QueryRow(ctxT(t), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// hangUp closes conn (Terminate) and waits until its session has released
// its upstream connection, so that the next session can find it pooled.
func hangUp(t testing.TB, p *testProxy, conn *pgx.Conn) {
	t.Helper()
	released := func() (n float64) {
		for _, result := range []string{"pooled", "closed", "reset_failed"} {
			n += counterValue(t, p.srv.metrics.upstreamReleased.WithLabelValues(result))
		}
		return n
	}
	before := released()
	conn.Close(context.Background())
	waitFor(t, "the session to release its upstream connection", func() bool { return released() > before })
}

// connectApp connects as alice with an application_name, which is part of
// what the pool matches on and names the test's backends in pg_stat_activity.
func connectApp(t testing.TB, p *testProxy, app string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), p.url("alice", "application_name="+app))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestPoolResetsEverySessionState: a session leaves settings, temporary
// objects, prepared statements, cursors, LISTEN and advisory locks behind;
// the next session gets the same backend and none of them.
func TestPoolResetsEverySessionState(t *testing.T) {
	p := startProxy(t, nil)
	ctx := ctxT(t)
	first := p.connect(t, "alice")
	pid := backendPID(t, first)
	startupDateStyle := first.PgConn().ParameterStatus("DateStyle")
	for _, sql := range []string{
		"SET work_mem = '7MB'",
		"SET search_path = pg_catalog",
		"SET DateStyle = 'SQL, DMY'",
		"SET application_name = 'left-behind'",
		"CREATE TEMP TABLE left_behind (x int)",
		"CREATE TEMP SEQUENCE left_seq",
		"SELECT nextval('left_seq')",
		"PREPARE left_stmt AS SELECT 1",
		"LISTEN left_channel",
		"SELECT pg_advisory_lock(4242)",
		"BEGIN", "DECLARE left_cursor CURSOR WITH HOLD FOR SELECT 1", "COMMIT",
	} {
		if _, err := first.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// random() after setseed is predictable, and DISCARD ALL keeps the seed.
	var predicted float64
	if err := first.QueryRow(ctx, "SELECT setseed(0.42), random()").Scan(nil, &predicted); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, "SELECT setseed(0.42)"); err != nil {
		t.Fatal(err)
	}
	hangUp(t, p, first)

	second := p.connect(t, "bob")
	if got := backendPID(t, second); got != pid {
		t.Fatalf("second session got backend %d, want the pooled %d", got, pid)
	}
	if v := counterValue(t, p.srv.metrics.upstreamReused); v != 1 {
		t.Errorf("reuse counted %v times, want 1", v)
	}
	if got := second.PgConn().ParameterStatus("DateStyle"); got != startupDateStyle {
		t.Errorf("DateStyle reported to the next client as %q, want the startup value %q", got, startupDateStyle)
	}
	if got := second.PgConn().ParameterStatus("application_name"); got == "left-behind" {
		t.Errorf("application_name of the previous session reported to the next client")
	}
	for sql, want := range map[string]string{
		"SHOW work_mem":    "4MB",
		"SHOW search_path": `"$user", public`,
		"SHOW DateStyle":   startupDateStyle,
		"SELECT count(*)::text FROM pg_class WHERE relpersistence = 't' AND relname IN ('left_behind', 'left_seq')": "0",
		"SELECT count(*)::text FROM pg_prepared_statements WHERE name = 'left_stmt'":                                "0",
		"SELECT count(*)::text FROM pg_cursors WHERE name = 'left_cursor'":                                          "0",
		"SELECT count(*)::text FROM pg_listening_channels()":                                                        "0",
		"SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()":                "0",
		"SELECT coalesce(current_setting('application_name'), '')":                                                  "",
	} {
		var got string
		if err := second.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got != want {
			t.Errorf("%s = %q after reuse, want %q", sql, got, want)
		}
	}
	if _, err := second.Exec(ctx, "SELECT currval('left_seq')"); err == nil {
		t.Error("the previous session's sequence is still visible")
	}
	var drawn float64
	if err := second.QueryRow(ctx, "SELECT random()").Scan(&drawn); err != nil {
		t.Fatal(err)
	}
	if drawn == predicted {
		t.Errorf("random() drew %v, which the previous session's setseed predicted", drawn)
	}
}

// TestPoolNeverReusesUnfinishedWork: a session that hangs up inside a
// transaction, or with extended-protocol messages not yet synced, leaves a
// backend that must not serve anyone: its work is rolled back with it.
func TestPoolNeverReusesUnfinishedWork(t *testing.T) {
	p := startProxy(t, nil)
	ctx := ctxT(t)
	setup := p.connect(t, "alice")
	if _, err := setup.Exec(ctx, "CREATE TABLE IF NOT EXISTS pool_unfinished (x int); TRUNCATE pool_unfinished"); err != nil {
		t.Fatal(err)
	}
	hangUp(t, p, setup)

	t.Run("open transaction", func(t *testing.T) {
		conn := p.connect(t, "alice")
		pid := backendPID(t, conn)
		if _, err := conn.Exec(ctx, "BEGIN; INSERT INTO pool_unfinished VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		closed := counterValue(t, p.srv.metrics.upstreamReleased.WithLabelValues("closed"))
		hangUp(t, p, conn)
		if counterValue(t, p.srv.metrics.upstreamReleased.WithLabelValues("closed")) != closed+1 {
			t.Fatal("a connection left inside a transaction was not closed")
		}
		next := p.connect(t, "alice")
		if got := backendPID(t, next); got == pid {
			t.Fatal("a backend left inside a transaction served the next session")
		}
		var n int
		if err := next.QueryRow(ctx, "SELECT count(*) FROM pool_unfinished").Scan(&n); err != nil || n != 0 {
			t.Fatalf("uncommitted row visible after hang-up: %d rows, %v", n, err)
		}
	})

	t.Run("unsynced extended messages", func(t *testing.T) {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: protocol30, Parameters: map[string]string{"user": "alice", "database": appDB}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := readUntilReady(c); err != nil {
			t.Fatal(err)
		}
		closed := counterValue(t, p.srv.metrics.upstreamReleased.WithLabelValues("closed"))
		fe.Send(&pgproto3.Parse{Query: "INSERT INTO pool_unfinished VALUES (2)"})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Flush{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for { // ParseComplete, BindComplete, CommandComplete: executed, not committed
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := msg.(*pgproto3.CommandComplete); ok {
				break
			}
		}
		fe.Send(&pgproto3.Terminate{})
		_ = fe.Flush()
		_, _ = io.Copy(io.Discard, c)
		waitFor(t, "the session to close its upstream connection", func() bool {
			return counterValue(t, p.srv.metrics.upstreamReleased.WithLabelValues("closed")) > closed
		})
		next := p.connect(t, "alice")
		var n int
		if err := next.QueryRow(ctx, "SELECT count(*) FROM pool_unfinished").Scan(&n); err != nil || n != 0 {
			t.Fatalf("unsynced insert committed: %d rows, %v", n, err)
		}
	})
}

// TestPoolKeysOnStartupParameters: a backend started with other startup
// parameters (here application_name) serves only sessions that ask for
// the same ones.
func TestPoolKeysOnStartupParameters(t *testing.T) {
	p := startProxy(t, nil)
	connect := func(app string) *pgx.Conn { return connectApp(t, p, app) }
	a := connect("app-a")
	pidA := backendPID(t, a)
	hangUp(t, p, a)
	b := connect("app-b")
	if backendPID(t, b) == pidA {
		t.Fatal("a backend started for app-a served app-b")
	}
	hangUp(t, p, b)
	again := connect("app-a")
	defer again.Close(context.Background())
	if got := backendPID(t, again); got != pidA {
		t.Fatalf("app-a got backend %d, want its pooled %d", got, pidA)
	}
}

// TestPoolDropsDeadConnections: a pooled backend that the upstream ended
// (pg_terminate_backend here; a restart alike) is noticed at checkout and
// replaced, without an error for the client.
func TestPoolDropsDeadConnections(t *testing.T) {
	p := startProxy(t, nil)
	first := p.connect(t, "alice")
	pid := backendPID(t, first)
	hangUp(t, p, first)
	admin, err := pgx.Connect(ctxT(t), pg.DSN("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctxT(t), "SELECT pg_terminate_backend($1::int, 5000)", pid); err != nil {
		t.Fatal(err)
	}
	next := p.connect(t, "alice")
	if got := backendPID(t, next); got == pid {
		t.Fatal("the terminated backend was handed out again")
	}
	if v := counterValue(t, p.srv.metrics.poolDiscarded); v != 1 {
		t.Fatalf("discarded %v pooled connections, want 1", v)
	}
}

// TestPoolCancelOfEndedSessionIgnored: a CancelRequest carrying the key of
// a session that has ended must not reach the backend, which another
// session now owns.
func TestPoolCancelOfEndedSessionIgnored(t *testing.T) {
	p := startProxy(t, nil)
	old := p.connect(t, "alice")
	oldPID, oldSecret := old.PgConn().PID(), old.PgConn().SecretKey()
	backend := backendPID(t, old)
	hangUp(t, p, old)

	next := p.connect(t, "bob")
	if backendPID(t, next) != backend {
		t.Fatal("the backend was not reused; this test needs it reused")
	}
	done := make(chan error, 1)
	go func() {
		_, err := next.Exec(ctxT(t), "SELECT pg_sleep(0.5)")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	sendCancel(t, p.addr, oldPID, oldSecret)
	if err := <-done; err != nil {
		t.Fatalf("the ended session's cancel key interrupted the next session: %v", err)
	}
}

// TestPoolIdleTimeoutAndSize: pooled connections idle past the timeout are
// closed, and a pool of size 0 keeps none.
func TestPoolIdleTimeoutAndSize(t *testing.T) {
	countBackends := func(app string) int {
		return countRows(t, pg.DSN("postgres", "postgres"), "SELECT count(*) FROM pg_stat_activity WHERE application_name = '"+app+"'")
	}
	t.Run("idle timeout", func(t *testing.T) {
		p := startProxy(t, func(c *Config) { c.UpstreamIdleTimeout = 200 * time.Millisecond })
		conn := connectApp(t, p, "pool-timeout")
		hangUp(t, p, conn)
		if p.srv.pool.idleCount() != 1 {
			t.Fatal("the connection was not pooled")
		}
		waitFor(t, "the idle pooled backend to be closed", func() bool {
			return p.srv.pool.idleCount() == 0 && countBackends("pool-timeout") == 0
		})
	})
	t.Run("size 0", func(t *testing.T) {
		p := startProxy(t, func(c *Config) { c.UpstreamPoolSize = 0 })
		conn := connectApp(t, p, "pool-off")
		hangUp(t, p, conn)
		waitFor(t, "the backend to end", func() bool { return countBackends("pool-off") == 0 })
		if v := counterValue(t, p.srv.metrics.upstreamReleased.WithLabelValues("pooled")); v != 0 {
			t.Fatalf("pooled %v connections with pool size 0", v)
		}
	})
}

// TestPoolShutdownClosesIdle: Shutdown closes the pooled connections.
func TestPoolShutdownClosesIdle(t *testing.T) {
	p := startProxy(t, nil)
	conn := connectApp(t, p, "pool-shutdown")
	hangUp(t, p, conn)
	if p.srv.pool.idleCount() != 1 {
		t.Fatal("the connection was not pooled")
	}
	p.stop()
	waitFor(t, "pooled backends to end after shutdown", func() bool {
		return countRows(t, pg.DSN("postgres", "postgres"), "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pool-shutdown'") == 0
	})
}

// TestPoolEnforcingLeavesNothingToTheNextIdentity: alice's session leaves
// a prepared statement and a held cursor, both rewritten for alice; carol
// gets the same backend next. Two layers keep carol from alice's rows: the
// reset drops them upstream, and mandate refuses EXECUTE and FETCH of names
// it did not decide in this session. Both must fail as PostgreSQL would for
// unknown names.
func TestPoolEnforcingLeavesNothingToTheNextIdentity(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	alice := w.connect(t, "alice")
	for _, sql := range []string{
		"PREPARE alices AS SELECT iban FROM accounts",
		"BEGIN", "DECLARE alices_cursor CURSOR WITH HOLD FOR SELECT iban FROM accounts", "COMMIT",
	} {
		if _, err := alice.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("alice: %s: %v", sql, err)
		}
	}
	reused := counterValue(t, w.p.srv.metrics.upstreamReused)
	hangUp(t, w.p, alice)
	carol := w.connect(t, "carol")
	if counterValue(t, w.p.srv.metrics.upstreamReused) != reused+1 {
		t.Fatal("carol did not get a pooled backend; this test needs alice's")
	}
	for sql, code := range map[string]string{
		"EXECUTE alices":               "26000", // invalid_sql_statement_name
		"FETCH ALL FROM alices_cursor": "34000", // invalid_cursor_name
	} {
		_, err := carol.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		if sqlState(err) != code {
			t.Errorf("carol: %s: got %v, want SQLSTATE %s", sql, err, code)
		}
	}
}

// TestPoolDropsBackendsThatKeepANameSet: PostgreSQL keeps a custom
// parameter's name defined after DISCARD ALL (its value reset to empty), so a
// pooled backend would tell the next session which names the last one set
// (red team round 3, C2), and that an earlier session declared a purpose
// or switched identity: mandate's stand-ins upstream are custom parameters
// too (round 23, L1). Such a backend is closed, not pooled.
func TestPoolDropsBackendsThatKeepANameSet(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	for _, tt := range []struct{ set, name string }{
		{"SET app.alices_secret_name = 'x'", "app.alices_secret_name"},
		{"SET mandate.purpose = 'support'", "mandate.purpose"},
		{"RESET mandate.token", "mandate.assumed"},
	} {
		alice := w.connect(t, "alice")
		if _, err := alice.Exec(ctx, tt.set, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", tt.set, err)
		}
		alicePID := backendPID(t, alice)
		hangUp(t, w.p, alice)
		carol := w.connect(t, "carol")
		if backendPID(t, carol) == alicePID {
			t.Errorf("%s: carol got alice's backend", tt.set)
		}
		var v *string
		if err := carol.QueryRow(ctx, "SELECT current_setting($1, true)", tt.name).Scan(&v); err != nil || v != nil {
			t.Errorf("%s: carol reads that %s was set: %v, %v; want NULL (never set here)", tt.set, tt.name, v, err)
		}
		// A session that set none leaves its backend to the pool.
		carolPID := backendPID(t, carol)
		hangUp(t, w.p, carol)
		dana := w.connect(t, "dana")
		if backendPID(t, dana) != carolPID {
			t.Errorf("%s: dana did not get carol's pooled backend", tt.set)
		}
		hangUp(t, w.p, dana)
	}
}
