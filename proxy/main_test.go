package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// pg is the package's real PostgreSQL, shared by every test; tests that
// restart it start a cluster of their own.
var pg *pgtest.Cluster

const (
	appRole     = "mandate_app"
	appPassword = "app-secret"
	appDB       = "app"
)

func TestMain(m *testing.M) {
	var err error
	pg, err = pgtest.New(pgtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := setupUpstream(pg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		pg.Stop()
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// setupUpstream creates the non-superuser role mandate connects as and
// the database the tests use.
func setupUpstream(c *pgtest.Cluster) error {
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE ROLE " + appRole + " LOGIN PASSWORD '" + appPassword + "'",
		"CREATE DATABASE " + appDB + " OWNER " + appRole,
	} {
		if err := c.ExecContext(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// upstreamURL is mandate's upstream: TCP with SCRAM as the app role.
func upstreamURL(c *pgtest.Cluster) string { return c.TCPDSN(appRole, appPassword, appDB) }

// testProxy is a running Server on a loopback port.
type testProxy struct {
	srv  *Server
	addr string
	done chan struct{}
}

// startProxy starts a transparent, trust-auth proxy in front of pg; edit
// adjusts the configuration first.
func startProxy(t testing.TB, edit func(*Config)) *testProxy {
	t.Helper()
	cfg := Config{
		Listen:      []string{"127.0.0.1:0"},
		Upstream:    upstreamURL(pg),
		Auth:        AuthTrust,
		Transparent: true,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Every test runs with reuse, so that each one also checks that no
		// session sees what an earlier one left on its upstream backend.
		UpstreamPoolSize: 4,
		// A small statement cache, so that tests evict from it too.
		UpstreamStatementCache: 3,
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	p := &testProxy{srv: srv, addr: srv.Addrs()[0].String(), done: make(chan struct{})}
	go func() { _ = srv.Serve(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *testProxy) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	<-p.done
}

func (p *testProxy) port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// url is a client connection string to the proxy.
func (p *testProxy) url(user string, extra string) string {
	u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", user, p.addr, appDB)
	if extra != "" {
		u += "&" + extra
	}
	return u
}

func (p *testProxy) connect(t testing.TB, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url(user, ""))
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// sqlState returns err's SQLSTATE, or "" when it is not a server error.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
