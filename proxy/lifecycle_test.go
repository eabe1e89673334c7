package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/mandate-proxy/mandate/internal/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func counterValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// startSCRAMProxy starts a proxy whose only SCRAM user is alice/s3cret.
func startSCRAMProxy(t *testing.T) *testProxy {
	t.Helper()
	v, err := NewVerifier("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	verifiers, err := ParseVerifiers(strings.NewReader("# users\nalice:" + v + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return startProxy(t, func(c *Config) { c.Auth, c.Verifiers = AuthSCRAM, verifiers })
}

func TestSCRAMAuthentication(t *testing.T) {
	p := startSCRAMProxy(t)
	ctx := ctxT(t)
	url := func(user, pw string) string {
		return "postgres://" + user + ":" + pw + "@" + p.addr + "/" + appDB + "?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, url("alice", "s3cret"))
	if err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	conn.Close(ctx)
	for _, c := range []struct{ user, pw string }{{"alice", "wrong"}, {"mallory", "s3cret"}} {
		_, err := pgx.Connect(ctx, url(c.user, c.pw))
		if sqlState(err) != codeInvalidPassword {
			t.Errorf("%s/%s: want 28P01, got %v", c.user, c.pw, err)
		}
		if err != nil && !strings.Contains(err.Error(), `password authentication failed for user "`+c.user+`"`) {
			t.Errorf("message does not match PostgreSQL's: %v", err)
		}
	}
	if got := counterValue(t, p.srv.metrics.authFailures.WithLabelValues(string(AuthSCRAM))); got != 2 {
		t.Errorf("auth failures counted %v, want 2", got)
	}
}

func TestVerifierFileErrorsNameTheLine(t *testing.T) {
	_, err := ParseVerifiers(strings.NewReader("\nbob:md5abc\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("want an error naming line 2, got %v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := pgtest.WriteSelfSignedCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		c.RequireTLS = true
	})
	ctx := ctxT(t)
	conn, err := pgconn.Connect(ctx, "postgres://alice@"+p.addr+"/"+appDB+"?sslmode=require")
	if err != nil {
		t.Fatalf("sslmode=require: %v", err)
	}
	if _, ok := conn.Conn().(*tls.Conn); !ok {
		t.Fatal("connection is not TLS")
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	// Plaintext is refused with a clear error when TLS is required.
	_, err = pgconn.Connect(ctx, "postgres://alice@"+p.addr+"/"+appDB+"?sslmode=disable")
	if sqlState(err) != codeInvalidAuthSpec || !strings.Contains(err.Error(), "TLS is required") {
		t.Fatalf("plaintext: want 28000 TLS is required, got %v", err)
	}
}

// TestGSSENCRequestRefused: a GSSENCRequest gets 'N', after which the
// client may go on with a normal startup on the same connection.
func TestGSSENCRequestRefused(t *testing.T) {
	p := startProxy(t, nil)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	gss := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), codeGSSENCRequest)
	startup, _ := (&pgproto3StartupForTest{user: "alice", db: appDB}).encode()
	if _, err := c.Write(gss); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 1)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 'N' {
		t.Fatalf("GSSENCRequest answered %q, %v", reply, err)
	}
	if _, err := c.Write(startup); err != nil {
		t.Fatal(err)
	}
	// AuthenticationOk comes first: 'R', length 8, code 0.
	auth := make([]byte, 9)
	if _, err := io.ReadFull(c, auth); err != nil || auth[0] != 'R' || binary.BigEndian.Uint32(auth[5:]) != 0 {
		t.Fatalf("startup after GSSENCRequest: %q %v", auth, err)
	}
}

func TestTLSNotOfferedWhenNotConfigured(t *testing.T) {
	p := startProxy(t, nil)
	_, err := pgconn.Connect(ctxT(t), "postgres://alice@"+p.addr+"/"+appDB+"?sslmode=require")
	if err == nil || !strings.Contains(err.Error(), "server refused TLS") {
		t.Fatalf("want 'server refused TLS', got %v", err)
	}
}

func TestTrustOnlyOnLoopback(t *testing.T) {
	_, err := New(Config{Listen: []string{"0.0.0.0:0"}, Upstream: upstreamURL(pg), Auth: AuthTrust, Transparent: true})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("trust on 0.0.0.0 accepted: %v", err)
	}
	_, err = New(Config{Listen: []string{"127.0.0.1:0"}, Upstream: upstreamURL(pg), Auth: AuthTrust})
	if err == nil || !strings.Contains(err.Error(), "--transparent") {
		t.Fatalf("start without policies and without --transparent: %v", err)
	}
}

func TestSuperuserUpstreamRefused(t *testing.T) {
	cfg := Config{Listen: []string{"127.0.0.1:0"}, Upstream: pg.DSN("postgres", appDB), Auth: AuthTrust, Transparent: true}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.CheckUpstream(ctxT(t)); err == nil || !strings.Contains(err.Error(), "superuser") {
		t.Fatalf("superuser upstream accepted: %v", err)
	}
	cfg.AllowSuperuserUpstream = true
	srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.CheckUpstream(ctxT(t)); err != nil {
		t.Fatalf("--allow-superuser-upstream: %v", err)
	}
}

func TestMaxClientConnections(t *testing.T) {
	p := startProxy(t, func(c *Config) { c.MaxClientConns = 2 })
	p.connect(t, "a")
	p.connect(t, "b")
	_, err := pgconn.Connect(ctxT(t), p.url("c", ""))
	if sqlState(err) != codeTooManyConnections {
		t.Fatalf("third connection: want 53300, got %v", err)
	}
}

func TestOversizedMessageEndsOnlyThatSession(t *testing.T) {
	p := startProxy(t, func(c *Config) { c.MaxMessageSize = 1 << 10 })
	other := p.connect(t, "bob")
	conn := p.connect(t, "alice")
	ctx := ctxT(t)
	_, err := conn.Exec(ctx, "SELECT '"+strings.Repeat("x", 4<<10)+"'")
	if sqlState(err) != codeProtocolViolation {
		t.Fatalf("want 08P01, got %v", err)
	}
	if _, err := other.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("other session disturbed: %v", err)
	}
}

// TestOversizedMessageAfterWork: what came before an oversized message is
// answered first, as PostgreSQL answers what comes before a message it
// ends the session for; then the 08P01 error, then the end.
func TestOversizedMessageAfterWork(t *testing.T) {
	p := startProxy(t, func(c *Config) { c.MaxMessageSize = 1 << 10 })
	got := answerBeforeClose(t, p.url("alice", ""), []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "SELECT 9"},
		&pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 4<<10) + "'"},
	}, "Terminate")
	if want := "RowDescription D[9] C[SELECT 1] ZI E[08P01]"; got != want {
		t.Fatalf("answered %s; want %s", got, want)
	}
}

// TestGarbageInput throws malformed bytes at every phase; each connection
// must end cleanly and the proxy must keep serving.
func TestGarbageInput(t *testing.T) {
	p := startProxy(t, nil)
	startup := func() []byte {
		b, _ := (&pgproto3StartupForTest{user: "alice", db: appDB}).encode()
		return b
	}
	cases := map[string][]byte{
		"http":               []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"huge length":        {0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0},
		"negative length":    {0xff, 0xff, 0xff, 0xf0},
		"short startup":      {0, 0, 0, 6, 0, 3},
		"bad protocol":       {0, 0, 0, 8, 0, 9, 0, 0},
		"after startup junk": append(startup(), 'Q', 0xff, 0xff, 0xff, 0xff),
		"unknown type":       append(startup(), '!', 0, 0, 0, 4),
		"bad length msg":     append(startup(), 'Q', 0, 0, 0, 2),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		b := make([]byte, 1+r.IntN(200))
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		cases["random "+string(rune('a'+i))] = b
	}
	for name, payload := range cases {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write(payload)
		if cw, ok := c.(*net.TCPConn); ok {
			_ = cw.CloseWrite()
		}
		// The proxy must hang up (EOF, or a reset when our bytes were left
		// unread), never leave the connection hanging until our deadline.
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: proxy did not end the connection: %v", name, err)
		}
		c.Close()
	}
	conn := p.connect(t, "alice")
	if _, err := conn.Exec(ctxT(t), "SELECT 1"); err != nil {
		t.Fatalf("proxy unusable after garbage: %v", err)
	}
}

// pgproto3StartupForTest encodes a StartupMessage for raw-socket tests.
type pgproto3StartupForTest struct{ user, db string }

func (s *pgproto3StartupForTest) encode() ([]byte, error) {
	body := binary.BigEndian.AppendUint32(nil, protocol30)
	for _, kv := range [][2]string{{"user", s.user}, {"database", s.db}} {
		body = append(append(append(append(body, kv[0]...), 0), kv[1]...), 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...), nil
}

func TestIdleTimeouts(t *testing.T) {
	p := startProxy(t, func(c *Config) {
		c.IdleTimeout = 200 * time.Millisecond
		c.IdleInTransactionTimeout = 300 * time.Millisecond
	})
	ctx := ctxT(t)
	// A statement longer than the idle timeout is not idleness.
	busy := p.connect(t, "alice")
	if _, err := busy.Exec(ctx, "SELECT pg_sleep(0.5)"); err != nil {
		t.Fatalf("statement in flight cut by the idle timeout: %v", err)
	}
	idle := p.connect(t, "alice")
	time.Sleep(600 * time.Millisecond)
	if _, err := idle.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("idle session still open")
	}
	inTx := p.connect(t, "alice")
	if _, err := inTx.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if _, err := inTx.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("idle-in-transaction session still open")
	}
	if n := counterValue(t, p.srv.metrics.errors.WithLabelValues(codeIdleSession)); n < 1 {
		t.Errorf("57P05 not sent (%v)", n)
	}
	if n := counterValue(t, p.srv.metrics.errors.WithLabelValues(codeIdleInTransaction)); n != 1 {
		t.Errorf("25P03 sent %v times, want 1", n)
	}
}

func TestGracefulShutdown(t *testing.T) {
	p := startProxy(t, func(c *Config) { c.ShutdownTimeout = 10 * time.Second })
	ctx := ctxT(t)
	busy := p.connect(t, "alice")
	idle := p.connect(t, "bob")
	result := make(chan error, 1)
	go func() {
		var v int
		err := busy.QueryRow(ctx, "SELECT 7 FROM pg_sleep(0.6)").Scan(&v)
		result <- err
	}()
	time.Sleep(150 * time.Millisecond)
	shutdown := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- p.srv.Shutdown(sctx)
	}()
	if err := <-result; err != nil {
		t.Fatalf("statement in flight did not finish: %v", err)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := idle.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("idle session survived shutdown")
	}
	if _, err := pgconn.Connect(ctx, p.url("carol", "")); err == nil {
		t.Fatal("new client accepted after shutdown")
	}
}

func TestUpstreamRestart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	own := pgtest.Start(t, pgtest.Options{})
	if err := setupUpstream(own); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(c *Config) { c.Upstream = upstreamURL(own) })
	ctx := ctxT(t)
	conn, err := pgconn.Connect(ctx, p.url("alice", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	if st := sqlState(err); st != codeConnectionFailure && st != "57P01" {
		t.Fatalf("after upstream restart: want 08006 or 57P01, got %v", err)
	}
	conn.Close(ctx)
	// New clients connect again once the upstream is back.
	conn2, err := pgconn.Connect(ctx, p.url("alice", ""))
	if err != nil {
		t.Fatalf("reconnect after restart: %v", err)
	}
	if _, err := conn2.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	conn2.Close(ctx)
	// With the upstream down, clients get a clear error and the proxy lives.
	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = pgconn.Connect(ctx, p.url("alice", ""))
	if sqlState(err) != codeConnectionFailure {
		t.Fatalf("upstream down: want 08006, got %v", err)
	}
	p.stop()
}

func TestAdminEndpoints(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.connect(t, "alice")
	if _, err := conn.Exec(ctxT(t), "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(p.srv.AdminHandler())
	defer ts.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{`mandate_statements_total{path="simple"}`, "mandate_client_connections 1", "mandate_upstream_connect_seconds_bucket", "mandate_client_sent_bytes_total", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestManyConcurrentClients runs clients in parallel with a mix of paths;
// each must get its own answers.
func TestManyConcurrentClients(t *testing.T) {
	p := startProxy(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, p.url("u", ""))
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for j := range 20 {
				var v int
				if err := conn.QueryRow(ctx, "SELECT $1::int + $2::int", i, j).Scan(&v); err != nil || v != i+j {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestReadyzAsksTheUpstreamOnce (red team round 36, F4): however many ask
// /readyz at once, the upstream is asked at most once a second, and the
// answer does not name the upstream's role, database or address.
func TestReadyzAsksTheUpstreamOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var dials sync.WaitGroup
	var n int
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			c.Close() // no PostgreSQL here: every check fails
		}
	}()
	srv, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstream: "postgres://secret_role@" + l.Addr().String() + "/secret_db?sslmode=disable", Auth: AuthTrust, Transparent: true})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.AdminHandler()
	for range 20 {
		dials.Add(1)
		go func() {
			defer dials.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "secret") {
				t.Errorf("/readyz: %d %q; want 503 naming nothing of the upstream", rec.Code, rec.Body.String())
			}
		}()
	}
	dials.Wait()
	mu.Lock()
	defer mu.Unlock()
	if n > 2 { // pgconn may try twice (TLS, then plain) for one check
		t.Errorf("20 /readyz at once opened %d upstream connections, want one check's", n)
	}
}
