package conformance

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mandate-proxy/mandate/audit"
	"github.com/mandate-proxy/mandate/internal/pgtest"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/store"
	"github.com/mandate-proxy/mandate/proxy"
)

var update = flag.Bool("update", false, "rewrite golden transcripts and docs/config.md")

const (
	appRole     = "mandate_app"
	appPassword = "app-secret"
	bankDB      = "bank"
)

// repoRoot is the module root, two levels up from this package.
var repoRoot = filepath.Join("..", "..")

// world is the bank database behind an enforcing, trust-auth mandate.
type world struct {
	pg       *pgtest.Cluster
	proxy    *proxy.Server
	addr     string // the proxy's host:port
	upstream string // the bank database as the upstream role
	auditLog string
	closers  []func()
}

// bank is shared by every test of the package; it is started lazily so
// that the config-doc test needs no PostgreSQL.
var bank struct {
	w   *world
	err error
	set bool
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if bank.w != nil {
		bank.w.close()
	}
	os.Exit(code)
}

// bankWorld returns the shared world, starting it on first use.
func bankWorld(t *testing.T) *world {
	t.Helper()
	if !bank.set {
		bank.set = true
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		bank.w, bank.err = startWorld(ctx)
	}
	if bank.err != nil {
		t.Fatalf("bank world: %v", bank.err)
	}
	return bank.w
}

func (w *world) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
}

func (w *world) port() string {
	_, port, _ := net.SplitHostPort(w.addr)
	return port
}

// startWorld mirrors cmd/mandate's buildEnforcement for one database:
// schema and seed, policy store, policies and masks, catalog, audit log,
// then a proxy on a loopback port.
func startWorld(ctx context.Context) (w *world, err error) {
	w = &world{}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.pg, err = pgtest.New(pgtest.Options{}); err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = w.pg.Stop() })
	for _, sql := range []string{
		"CREATE ROLE " + appRole + " LOGIN PASSWORD '" + appPassword + "'",
		"CREATE DATABASE " + bankDB + " OWNER " + appRole,
	} {
		if err := w.pg.ExecContext(ctx, sql); err != nil {
			return nil, err
		}
	}
	w.upstream = w.pg.TCPDSN(appRole, appPassword, bankDB)

	owner, err := pgx.Connect(ctx, w.upstream)
	if err != nil {
		return nil, err
	}
	defer owner.Close(context.Background())
	bankDir := filepath.Join(repoRoot, "testdata", "bank")
	schema, err := os.ReadFile(filepath.Join(bankDir, "schema.sql"))
	if err != nil {
		return nil, err
	}
	if _, err := owner.Exec(ctx, string(schema)); err != nil {
		return nil, fmt.Errorf("bank schema: %w", err)
	}
	if _, err := store.Migrate(ctx, owner); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}

	connCfg, err := pgx.ParseConfig(w.upstream)
	if err != nil {
		return nil, err
	}
	state, err := store.NewState(store.Config{ConnConfig: connCfg})
	if err != nil {
		return nil, err
	}
	if err := state.Load(ctx); err != nil {
		return nil, err
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { _ = state.Watch(watchCtx); close(watched) }()
	w.closers = append(w.closers, func() { stopWatch(); <-watched })

	engine, err := policy.Open(policy.Sources{
		PolicyDir: filepath.Join(bankDir, "policies"), Schema: filepath.Join(bankDir, "schema.cedarschema"),
		Entities: filepath.Join(bankDir, "entities.json"), Masks: filepath.Join(bankDir, "masks.yaml"),
	}, policy.Options{Consents: proxy.StateConsents{State: state}})
	if err != nil {
		return nil, err
	}
	if err := store.EnsureMaskKeys(ctx, owner, engine.Snapshot().Masks().HashKeys()); err != nil {
		return nil, err
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	upCfg, err := pgconn.ParseConfig(w.upstream)
	if err != nil {
		return nil, err
	}
	catalogs := proxy.NewCatalogCache(upCfg, quiet)
	w.closers = append(w.closers, catalogs.Close)
	if err := catalogs.Refresh(ctx); err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "mandate-conformance-")
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = os.RemoveAll(dir) })
	w.auditLog = filepath.Join(dir, "audit.log")
	aw, err := audit.Open(w.auditLog, audit.Options{})
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, func() { _ = aw.Close() })

	srv, err := proxy.New(proxy.Config{
		Listen:   []string{"127.0.0.1:0"},
		Upstream: w.upstream,
		Auth:     proxy.AuthTrust,
		Enforcer: &proxy.Enforcer{Engine: engine, State: state, Catalogs: catalogs},
		Audit:    aw,
		Logger:   quiet,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	w.proxy, w.addr = srv, srv.Addrs()[0].String()
	served := make(chan struct{})
	go func() { _ = srv.Serve(); close(served) }()
	w.closers = append(w.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return w, nil
}

// clientEnv is the libpq-style environment every client reads (psql,
// psycopg2 and node-postgres natively; the JDBC program builds its URL
// from it): alice over loopback TCP with trust, no TLS.
func (w *world) clientEnv() []string {
	return append(os.Environ(),
		"PGHOST=127.0.0.1", "PGPORT="+w.port(), "PGUSER=alice", "PGDATABASE="+bankDB,
		"PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10", "PGAPPNAME=conformance",
	)
}

// serverFacts are the upstream's version strings, which transcripts show
// as placeholders so golden files do not depend on the installed release.
func (w *world) serverFacts(ctx context.Context) (map[string]string, error) {
	conn, err := pgx.Connect(ctx, w.upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var version, num, full string
	err = conn.QueryRow(ctx, "SELECT version(), current_setting('server_version_num'), current_setting('server_version')").Scan(&version, &num, &full)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return nil, err
	}
	short := fmt.Sprintf("%d.%d", n/10000, n%10000)
	return map[string]string{
		"<version()>":            version,
		"<server_version>":       full,
		"<server_version_num>":   num,
		"<server_version_short>": short,
		"<server_version_major>": strconv.Itoa(n / 10000),
	}, nil
}
