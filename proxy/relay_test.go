package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/mandate-proxy/mandate/internal/pgtest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSimpleQueryMultiStatement(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)

	results, err := conn.PgConn().Exec(ctx, "SELECT 1 AS a; SELECT 'two' AS b, 3 AS c; CREATE TEMP TABLE t(x int); INSERT INTO t VALUES (1),(2)").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 {
		t.Fatalf("got %d results, want 4", len(results))
	}
	if got := string(results[1].Rows[0][0]); got != "two" {
		t.Errorf("second statement returned %q", got)
	}
	if got := results[3].CommandTag.String(); got != "INSERT 0 2" {
		t.Errorf("command tag %q", got)
	}

	// An error in the middle aborts the rest, as PostgreSQL does, and the
	// connection stays usable.
	_, err = conn.PgConn().Exec(ctx, "SELECT 1; SELECT 1/0; SELECT 3").ReadAll()
	if sqlState(err) != "22012" {
		t.Fatalf("want division_by_zero, got %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 42", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 42 {
		t.Fatalf("connection unusable after error: %v %d", err, n)
	}
}

func TestExtendedProtocol(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)

	// Named prepared statement, reused.
	if _, err := conn.Prepare(ctx, "add", "SELECT $1::int + $2::int"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var sum int
		if err := conn.QueryRow(ctx, "add", i, 10).Scan(&sum); err != nil || sum != i+10 {
			t.Fatalf("named statement: %v %d", err, sum)
		}
	}
	// Unnamed statements with every exec mode pgx has.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		var s string
		if err := conn.QueryRow(ctx, "SELECT $1::text || 'x'", mode, "a").Scan(&s); err != nil || s != "ax" {
			t.Fatalf("mode %v: %v %q", mode, err, s)
		}
	}
	// Describe of a statement reports parameter and result types.
	sd, err := conn.PgConn().Prepare(ctx, "desc", "SELECT $1::bigint AS big, now() AS ts", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.ParamOIDs) != 1 || sd.ParamOIDs[0] != 20 || len(sd.Fields) != 2 || string(sd.Fields[1].Name) != "ts" {
		t.Fatalf("describe: %+v", sd)
	}
	// Close a statement, then using it is an error and the session goes on.
	if err := conn.PgConn().Deallocate(ctx, "desc"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.PgConn().ExecPrepared(ctx, "desc", [][]byte{[]byte("1")}, nil, nil).Close(); sqlState(err) != "26000" {
		t.Fatalf("closed statement: want 26000, got %v", err)
	}
	// Parse error in the extended protocol leaves the connection usable.
	if _, err := conn.Exec(ctx, "SELEC 1"); sqlState(err) != "42601" {
		t.Fatalf("want syntax error, got %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineAndBatch(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)

	batch := &pgx.Batch{}
	for i := range 50 {
		batch.Queue("SELECT $1::int * 2", i)
	}
	br := conn.SendBatch(ctx, batch)
	for i := range 50 {
		var v int
		if err := br.QueryRow().Scan(&v); err != nil || v != 2*i {
			t.Fatalf("batch row %d: %v %d", i, err, v)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// Raw pipeline with two syncs and an error in the first segment.
	pl := conn.PgConn().StartPipeline(ctx)
	pl.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams("SELECT 7", nil, nil, nil, nil)
	pl.SendPipelineSync()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	var sawErr, sawSeven bool
	for range 4 {
		res, err := pl.GetResults()
		if sqlState(err) == "22012" {
			sawErr = true
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		switch r := res.(type) {
		case *pgconn.ResultReader:
			rr := r.Read()
			if sqlState(rr.Err) == "22012" {
				sawErr = true
			} else if rr.Err == nil && len(rr.Rows) == 1 && string(rr.Rows[0][0]) == "7" {
				sawSeven = true
			}
		case *pgconn.PipelineSync:
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	if !sawErr || !sawSeven {
		t.Fatalf("pipeline: error seen %v, second segment seen %v", sawErr, sawSeven)
	}
}

func TestPortalsWithRowLimit(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// A named cursor fetched in pieces exercises portals across messages.
	if _, err := tx.Exec(ctx, "DECLARE c CURSOR FOR SELECT g FROM generate_series(1, 10) g"); err != nil {
		t.Fatal(err)
	}
	total := 0
	for {
		rows, err := tx.Query(ctx, "FETCH 3 FROM c")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 10 {
		t.Fatalf("fetched %d rows, want 10", total)
	}
}

func TestCopyBothWays(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE items(id int, name text)"); err != nil {
		t.Fatal(err)
	}
	// COPY FROM with enough rows to cross the upstream flush threshold.
	const n = 20000
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{i, fmt.Sprintf("item-%d", i)}
	}
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
	if err != nil || copied != n {
		t.Fatalf("copy from: %v %d", err, copied)
	}
	// Text COPY FROM STDIN through pgconn.
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("-1\tminus\n-2\tminus two\n"), "COPY items FROM STDIN")
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("copy from stdin: %v %v", err, tag)
	}
	var buf bytes.Buffer
	tag, err = conn.PgConn().CopyTo(ctx, &buf, "COPY (SELECT * FROM items ORDER BY id) TO STDOUT")
	if err != nil || tag.RowsAffected() != n+2 {
		t.Fatalf("copy to: %v %v", err, tag)
	}
	if !strings.HasPrefix(buf.String(), "-2\tminus two\n") {
		t.Fatalf("copy to: unexpected start %q", buf.String()[:20])
	}
	// A failing COPY FROM (bad data) is an error and the session goes on.
	_, err = conn.PgConn().CopyFrom(ctx, strings.NewReader("not-a-number\tx\n"), "COPY items FROM STDIN")
	if sqlState(err) != "22P02" {
		t.Fatalf("bad copy data: want 22P02, got %v", err)
	}
	var count int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&count); err != nil || count != n+2 {
		t.Fatalf("after failed copy: %v %d", err, count)
	}
}

func TestCancelRequest(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(20)")
	if err == nil {
		t.Fatal("sleep was not cancelled")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// pgx closes a connection whose query was interrupted by its context;
	// the cancel must have reached PostgreSQL, which we check on a fresh
	// connection: no backend of ours is still sleeping.
	check := p.connect(t, "alice")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var sleeping int
		if err := check.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'").Scan(&sleeping); err != nil {
			t.Fatal(err)
		}
		if sleeping == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upstream query is still running: cancel was not forwarded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := counterValue(t, p.srv.metrics.cancels.WithLabelValues("forwarded")); v < 1 {
		t.Fatalf("cancel not counted as forwarded: %v", v)
	}
}

func TestCancelWithForgedKeyIsIgnored(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)
	pid := conn.PgConn().PID()
	secret := conn.PgConn().SecretKey()
	forged := append([]byte(nil), secret...)
	forged[0] ^= 0xff

	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(0.5)")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	sendCancel(t, p.addr, pid, forged)
	if err := <-done; err != nil {
		t.Fatalf("query was cancelled by a forged key: %v", err)
	}
	if v := counterValue(t, p.srv.metrics.cancels.WithLabelValues("unknown")); v != 1 {
		t.Fatalf("forged cancel counted %v times as unknown", v)
	}
}

// sendCancel sends a CancelRequest to addr and waits for the hang-up,
// which comes without a word whether or not the key was known.
func sendCancel(t testing.TB, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, c)
}

func TestListenNotify(t *testing.T) {
	p := startProxy(t, nil)
	listener := p.connect(t, "alice")
	notifier := p.connect(t, "bob")
	ctx := ctxT(t)
	if _, err := listener.Exec(ctx, "LISTEN events"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "SELECT pg_notify('events', 'hello')"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != "events" || n.Payload != "hello" {
		t.Fatalf("notification %+v", n)
	}
}

func TestNoticeAndParameterStatus(t *testing.T) {
	p := startProxy(t, nil)
	var notices []string
	cfg, err := pgx.ParseConfig(p.url("alice", "application_name=startup-app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	ctx := ctxT(t)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if got := conn.PgConn().ParameterStatus("application_name"); got != "startup-app" {
		t.Errorf("startup parameter not passed on: application_name=%q", got)
	}
	if got := conn.PgConn().ParameterStatus("session_authorization"); got != "alice" {
		t.Errorf("session_authorization=%q, want the client's user", got)
	}
	if _, err := conn.Exec(ctx, "DO $$ BEGIN RAISE NOTICE 'note %', 1; END $$"); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || notices[0] != "note 1" {
		t.Fatalf("notices %q", notices)
	}
	if _, err := conn.Exec(ctx, "SET application_name = 'changed'"); err != nil {
		t.Fatal(err)
	}
	if got := conn.PgConn().ParameterStatus("application_name"); got != "changed" {
		t.Errorf("ParameterStatus not relayed: %q", got)
	}
}

func TestTransactionsAndErrors(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE acct(id int primary key, v int)"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES (1, 2)"); sqlState(err) != "23505" {
		t.Fatalf("want unique violation, got %v", err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); sqlState(err) != "25P02" {
		t.Fatalf("want in_failed_sql_transaction, got %v", err)
	}
	if conn.PgConn().TxStatus() != 'E' {
		t.Fatalf("tx status %c", conn.PgConn().TxStatus())
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled back rows visible: %v %d", err, n)
	}
	if got := counterValue(t, p.srv.metrics.errors.WithLabelValues("23505")); got < 1 {
		t.Errorf("errors by SQLSTATE not counted: %v", got)
	}
}

func TestLargeRowsStreamThrough(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	ctx := ctxT(t)
	// Rows larger than the relay's read buffer take the streaming path.
	var s string
	if err := conn.QueryRow(ctx, "SELECT repeat('x', 1000000)").Scan(&s); err != nil || len(s) != 1000000 {
		t.Fatalf("large row: %v %d", err, len(s))
	}
	var big []byte
	payload := bytes.Repeat([]byte{7}, 3<<20)
	if err := conn.QueryRow(ctx, "SELECT $1::bytea", payload).Scan(&big); err != nil || !bytes.Equal(big, payload) {
		t.Fatalf("large parameter round trip: %v %d", err, len(big))
	}
}

func TestUnsafeStartupOptionsRefused(t *testing.T) {
	p := startProxy(t, nil)
	ctx := ctxT(t)
	for _, extra := range []string{"options=-c%20role%3Dpostgres", "options=-c%20session_authorization%3Dpostgres", "role=postgres", "replication=database"} {
		_, err := pgconn.Connect(ctx, p.url("alice", extra))
		if err == nil {
			t.Fatalf("%s: connected", extra)
		}
		if st := sqlState(err); st != codeInsufficientPriv && st != codeFeatureUnsupported {
			t.Errorf("%s: want 42501 or 0A000, got %v", extra, err)
		}
	}
	// Safe options pass on.
	conn, err := pgconn.Connect(ctx, p.url("alice", "options=-c%20search_path%3Dpg_catalog"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "SHOW search_path").ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "pg_catalog" {
		t.Fatalf("search_path option: %v %v", err, res)
	}
}

func TestUnknownDatabaseReportsUpstreamError(t *testing.T) {
	p := startProxy(t, nil)
	_, err := pgconn.Connect(ctxT(t), fmt.Sprintf("postgres://alice@%s/nosuchdb?sslmode=disable", p.addr))
	if sqlState(err) != "3D000" {
		t.Fatalf("want 3D000, got %v", err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && !strings.Contains(pe.Message, "nosuchdb") {
		t.Fatalf("message %q", pe.Message)
	}
}

// TestTLSUpstream relays from an upstream reached over TLS, which mandate
// reads through the TLS connection rather than the raw socket: small and
// large rows, COPY out, and a pooled connection's next session.
func TestTLSUpstream(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{SSL: true})
	if err := setupUpstream(c); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *Config) { cfg.Upstream = upstreamURL(c) })
	ctx := ctxT(t)
	for round := range 2 { // the second session gets the pooled connection
		conn := p.connect(t, "alice")
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Fatalf("round %d: upstream connection not encrypted: %v %v", round, ssl, err)
		}
		var s string
		if err := conn.QueryRow(ctx, "SELECT repeat('x', 1000000)").Scan(&s); err != nil || len(s) != 1000000 {
			t.Fatalf("round %d: large row: %v %d", round, err, len(s))
		}
		var out bytes.Buffer
		tag, err := conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT g FROM generate_series(1, 5000) g) TO STDOUT")
		if err != nil || tag.RowsAffected() != 5000 || strings.Count(out.String(), "\n") != 5000 {
			t.Fatalf("round %d: COPY TO over TLS: %v %v", round, tag, err)
		}
		conn.Close(ctx)
		waitFor(t, "the upstream connection back in the pool", func() bool { return testutil.ToFloat64(p.srv.metrics.poolIdle) == 1 })
	}
	if n := testutil.ToFloat64(p.srv.metrics.upstreamReused); n < 1 {
		t.Fatalf("the second session did not reuse the TLS connection (%v reuses)", n)
	}
}

// TestTerminateBehindWork: a client may say goodbye (a Terminate in the same
// write, or closing its side of the stream) right behind work still to
// answer: a query, extended-protocol messages with or without their Sync,
// COPY data. PostgreSQL answers all of it and then closes; mandate must
// answer the same, message for message, and do the same work.
func TestTerminateBehindWork(t *testing.T) {
	p := startProxy(t, nil)
	certFile, keyFile, err := pgtest.WriteSelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, func(c *Config) { c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}} })
	// A plain socket is read by the pump, a TLS one by Receive.
	proxies := map[string]string{"plain": p.url("alice", ""), "TLS": "postgres://alice@" + tp.addr + "/" + appDB + "?sslmode=require"}
	setup := p.connect(t, "alice")
	if _, err := setup.Exec(ctxT(t), "CREATE TABLE IF NOT EXISTS terminate_behind(x int)"); err != nil {
		t.Fatal(err)
	}
	extended := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}}
	}
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		want string // in the direct answer: the case tests what it means to
	}{
		{"query", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 42"}}, "D[42]"},
		{"two statements", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1; SELECT 2"}}, "D[2]"},
		{"insert", []pgproto3.FrontendMessage{&pgproto3.Query{String: "INSERT INTO terminate_behind VALUES (1)"}}, "C[INSERT 0 1]"},
		{"slow", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT pg_sleep(0.2), 7"}}, "D[ 7]"},
		{"error", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1/0"}}, "E[22012]"},
		{"extended", append(extended("INSERT INTO terminate_behind VALUES (2) RETURNING x"), &pgproto3.Sync{}), "D[2]"},
		{"extended unsynced", extended("INSERT INTO terminate_behind VALUES (3)"), ""},
		{"copy in", []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY terminate_behind FROM STDIN"},
			&pgproto3.CopyData{Data: []byte("4\n")}, &pgproto3.CopyDone{}}, "C[COPY 1]"},
		{"copy in unfinished", []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY terminate_behind FROM STDIN"},
			&pgproto3.CopyData{Data: []byte("5\n")}}, "G"},
		{"copy in, large", bigCopy(20000), "C[COPY 20000]"},
		{"a thousand queries", thousandQueries(), "D[998] C[SELECT 1] ZI C[INSERT 0 1]"},
		{"copy in, large, unfinished", bigCopy(20000)[:20001], "G"},
	}
	count := func() int {
		var n int
		if err := setup.QueryRow(ctxT(t), "SELECT count(*) FROM terminate_behind").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, end := range []string{"Terminate", "half-close"} {
				before := count()
				direct := answerBeforeClose(t, upstreamURL(pg), c.msgs, end)
				written := count() - before
				if !strings.Contains(direct, c.want) {
					t.Fatalf("%s: PostgreSQL answered %s; the case expects %s in it", end, direct, c.want)
				}
				for name, url := range proxies {
					before := count()
					proxied := answerBeforeClose(t, url, c.msgs, end)
					if proxied != direct {
						t.Errorf("%s, %s: through mandate: %s\ndirect: %s", end, name, proxied, direct)
					}
					if n := count() - before; n != written {
						t.Errorf("%s, %s: through mandate %d rows were written, directly %d", end, name, n, written)
					}
				}
			}
		})
	}
}

// answerBeforeClose connects to dsn, writes msgs and says goodbye in the
// same write (end: "Terminate") or by closing its side of the stream
// ("half-close"), and summarises every message the server sends until it
// closes.
func answerBeforeClose(t *testing.T, dsn string, msgs []pgproto3.FrontendMessage, end string) string {
	t.Helper()
	conn, err := pgconn.Connect(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := conn.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	if end == "Terminate" {
		msgs = append(slices.Clip(msgs), &pgproto3.Terminate{})
	}
	if _, err := hc.Conn.Write(encodeAll(msgs...)); err != nil {
		t.Fatal(err)
	}
	if end == "half-close" {
		if err := hc.Conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for {
		msg, err := hc.Frontend.Receive()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return strings.Join(out, " ")
		}
		if err != nil {
			t.Fatalf("%s: after %v: %v", dsn, out, err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			out = append(out, fmt.Sprintf("D%s", m.Values))
		case *pgproto3.CommandComplete:
			out = append(out, fmt.Sprintf("C[%s]", m.CommandTag))
		case *pgproto3.ErrorResponse:
			out = append(out, fmt.Sprintf("E[%s]", m.Code))
		case *pgproto3.ReadyForQuery:
			out = append(out, "Z"+string(m.TxStatus))
		case *pgproto3.CopyInResponse:
			out = append(out, "G")
		default:
			out = append(out, fmt.Sprintf("%T", msg)[len("*pgproto3."):])
		}
	}
}

// TestProtocolEdgesMatchPostgreSQL writes batches that exercise the
// protocol's corners, each in one write and followed by a Terminate or the
// end of the stream, to PostgreSQL directly and through a transparent
// mandate, and compares the answers message for message.
func TestProtocolEdgesMatchPostgreSQL(t *testing.T) {
	p := startProxy(t, nil)
	for _, c := range protocolEdges() {
		t.Run(c.name, func(t *testing.T) {
			for _, end := range []string{"Terminate", "half-close"} {
				direct := answerBeforeClose(t, upstreamURL(pg), c.msgs, end)
				if !strings.Contains(direct, c.want) {
					t.Fatalf("%s: PostgreSQL answered %s; the case expects %s in it", end, direct, c.want)
				}
				if proxied := answerBeforeClose(t, p.url("alice", ""), c.msgs, end); proxied != direct {
					t.Errorf("%s: through mandate: %s\ndirect: %s", end, proxied, direct)
				}
			}
		})
	}
}

// TestProtocolEdgesEnforcing: through an enforcing mandate (the bank world,
// as alice) the same batches get PostgreSQL's answers too, except where
// mandate refuses a statement by design: DO, temporary tables and
// pg_terminate_backend; and a message mandate cannot decode ends the
// session, where PostgreSQL fails only that message.
func TestProtocolEdgesEnforcing(t *testing.T) {
	w := startBank(t)
	url := fmt.Sprintf("postgres://alice@%s/%s?sslmode=disable", w.p.addr, w.db)
	byDesign := map[string]string{
		"notice":                          "E[42501] ZI",                                     // DO
		"copy fail":                       "E[0A000] ZI E[42P01] ZI",                         // CREATE TEMP TABLE
		"implicit transaction of a batch": "E[0A000] ZI RowDescription D[0] C[SELECT 1] ZI",  // the same
		"the backend ends itself":         "E[42501] ZI RowDescription D[12] C[SELECT 1] ZI", // pg_terminate_backend
		"truncated bind":                  "ParseComplete E[08P01]",                          // a message mandate cannot read ends the session
	}
	for _, c := range protocolEdges() {
		t.Run(c.name, func(t *testing.T) {
			for _, end := range []string{"Terminate", "half-close"} {
				want := byDesign[c.name]
				if want == "" {
					want = answerBeforeClose(t, w.url, c.msgs, end)
				}
				if got := answerBeforeClose(t, url, c.msgs, end); got != want {
					t.Errorf("%s: through mandate: %s\nwant: %s", end, got, want)
				}
			}
		})
	}
}

type protocolEdge struct {
	name string
	msgs []pgproto3.FrontendMessage
	want string // in PostgreSQL's answer: the case tests what it means to
}

func protocolEdges() []protocolEdge {
	type msgs = []pgproto3.FrontendMessage
	q := func(sql string) *pgproto3.Query { return &pgproto3.Query{String: sql} }
	return []protocolEdge{
		{"empty query", msgs{q("")}, "EmptyQueryResponse"},
		{"comment only", msgs{q("-- nothing")}, "EmptyQueryResponse"},
		{"trailing semicolons", msgs{q("SELECT 1;;")}, "D[1]"},
		{"error aborts the rest", msgs{q("SELECT 1; SELECT 1/0; SELECT 2")}, "E[22012]"},
		{"failed transaction", msgs{q("BEGIN"), q("SELECT 1/0"), q("SELECT 1"), q("ROLLBACK"), q("SELECT 3")}, "E[25P02]"},
		{"notice", msgs{q("DO $$ BEGIN RAISE NOTICE 'hello'; END $$")}, "NoticeResponse"},
		{"large row", msgs{q("SELECT repeat('x', 200000)")}, "C[SELECT 1]"},
		{"copy out", msgs{q("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT")}, "CopyOutResponse"},
		{"copy fail", msgs{q("CREATE TEMP TABLE cf(x int); COPY cf FROM STDIN"), &pgproto3.CopyData{Data: []byte("1\n")},
			&pgproto3.CopyFail{Message: "client gave up"}, q("SELECT count(*) FROM cf")}, "E[57014]"},
		{"copy data outside COPY", msgs{&pgproto3.CopyData{Data: []byte("stray")}, &pgproto3.CopyDone{}, q("SELECT 4")}, "D[4]"},
		{"sync alone", msgs{&pgproto3.Sync{}, &pgproto3.Sync{}}, "ZI ZI"},
		{"flush alone", msgs{&pgproto3.Flush{}, q("SELECT 5")}, "D[5]"},
		{"parse error skips to sync", msgs{&pgproto3.Parse{Query: "SELEC 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{}, q("SELECT 6")}, "E[42601]"},
		{"describe unknown statement", msgs{&pgproto3.Describe{ObjectType: 'S', Name: "nope"}, &pgproto3.Sync{}}, "E[26000]"},
		{"close unknown statement", msgs{&pgproto3.Close{ObjectType: 'S', Name: "nope"}, &pgproto3.Sync{}}, "CloseComplete"},
		{"portal suspended", msgs{&pgproto3.Parse{Query: "SELECT generate_series(1, 5)"}, &pgproto3.Bind{},
			&pgproto3.Execute{MaxRows: 2}, &pgproto3.Execute{MaxRows: 2}, &pgproto3.Execute{}, &pgproto3.Sync{}}, "PortalSuspended"},
		{"named statement and portal", msgs{&pgproto3.Parse{Name: "s1", Query: "SELECT $1::int + 1"},
			&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1", Parameters: [][]byte{[]byte("41")}},
			&pgproto3.Describe{ObjectType: 'P', Name: "p1"}, &pgproto3.Execute{Portal: "p1"},
			&pgproto3.Close{ObjectType: 'P', Name: "p1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{}}, "D[42]"},
		{"wrong parameter count", msgs{&pgproto3.Parse{Query: "SELECT $1::int"}, &pgproto3.Bind{}, &pgproto3.Sync{}}, "E[08P01]"},
		{"implicit transaction of a batch", msgs{&pgproto3.Parse{Query: "CREATE TEMP TABLE it(x int)"}, &pgproto3.Bind{},
			&pgproto3.Execute{}, &pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{}, q("SELECT count(*) FROM pg_class WHERE relname = 'it'")}, "D[0]"},
		{"unknown message type", msgs{q("SELECT 7"), rawFrontend{'z', 0, 0, 0, 4}, q("SELECT 8")}, "E[08P01]"},
		{"unknown message type after unsynced ones", msgs{&pgproto3.Parse{Query: "SELECT 10"}, &pgproto3.Bind{},
			&pgproto3.Execute{}, rawFrontend{'z', 0, 0, 0, 4}}, "E[08P01]"},
		// A transparent mandate passes bodies on undecoded: PostgreSQL's
		// checks answer these, as they would without mandate.
		{"malformed message body", msgs{q("SELECT 13"), rawFrontend{'P', 0, 0, 0, 6, 'x', 'y'}, q("SELECT 14")}, "E[08P01]"},
		{"truncated bind", msgs{&pgproto3.Parse{Query: "SELECT 15"}, rawFrontend{'B', 0, 0, 0, 5, 0}, &pgproto3.Sync{}}, "E[08P01]"},
		{"the backend ends itself", msgs{q("SELECT pg_terminate_backend(pg_backend_pid())"), q("SELECT 12")}, "E[57P01]"},
		{"unknown message type after flush", msgs{&pgproto3.Parse{Query: "SELECT 11"}, &pgproto3.Bind{},
			&pgproto3.Execute{}, &pgproto3.Flush{}, rawFrontend{'z', 0, 0, 0, 4}}, "E[08P01]"},
	}
}

// rawFrontend is a client message written as it is, whatever it holds.
type rawFrontend []byte

func (rawFrontend) Frontend()                           {}
func (rawFrontend) Decode([]byte) error                 { return nil }
func (r rawFrontend) Encode(dst []byte) ([]byte, error) { return append(dst, r...), nil }

// bigCopy is a COPY of n rows into terminate_behind, a CopyData each (more
// than mandate gathers before it writes upstream), then CopyDone.
func bigCopy(n int) []pgproto3.FrontendMessage {
	msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY terminate_behind FROM STDIN"}}
	for i := range n {
		msgs = append(msgs, &pgproto3.CopyData{Data: []byte(strconv.Itoa(i) + "\n")})
	}
	return append(msgs, &pgproto3.CopyDone{})
}

// TestClientResetMidCopy: a client that dies in the middle of a COPY
// (its kernel resets the connection right behind its last data) must not
// leave the upstream backend waiting for more rows, holding its locks.
func TestClientResetMidCopy(t *testing.T) {
	p := startProxy(t, nil)
	ctx := ctxT(t)
	setup := p.connect(t, "alice")
	if _, err := setup.Exec(ctx, "CREATE TABLE IF NOT EXISTS reset_mid_copy(x int)"); err != nil {
		t.Fatal(err)
	}
	super, err := pgx.Connect(ctx, pg.DSN("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(context.Background())
	for i := range 5 {
		conn, err := pgconn.Connect(ctx, p.url("alice", ""))
		if err != nil {
			t.Fatal(err)
		}
		hc, err := conn.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := hc.Conn.Write(encodeAll(&pgproto3.Query{String: "COPY reset_mid_copy FROM STDIN /* reset */"})); err != nil {
			t.Fatal(err)
		}
		if msg, err := hc.Frontend.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := msg.(*pgproto3.CopyInResponse); !ok {
			t.Fatalf("got %T, want CopyInResponse", msg)
		}
		if _, err := hc.Conn.Write(encodeAll(&pgproto3.CopyData{Data: []byte(strconv.Itoa(i) + "\n")})); err != nil {
			t.Fatal(err)
		}
		hc.Conn.(*net.TCPConn).SetLinger(0) // the reset follows the data at once
		hc.Conn.Close()
	}
	waitFor(t, "the sessions to end", func() bool { return p.srv.active.Load() == 1 })
	waitFor(t, "their backends to leave the COPY", func() bool {
		var n int
		err := super.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* reset */' AND state = 'active'`).Scan(&n)
		return err == nil && n == 0
	})
}

// thousandQueries is a pipeline of 1,000 simple queries, each answered
// with its number, the last inserting a row.
func thousandQueries() []pgproto3.FrontendMessage {
	var msgs []pgproto3.FrontendMessage
	for i := range 999 {
		msgs = append(msgs, &pgproto3.Query{String: "SELECT " + strconv.Itoa(i)})
	}
	return append(msgs, &pgproto3.Query{String: "INSERT INTO terminate_behind VALUES (1000)"})
}
