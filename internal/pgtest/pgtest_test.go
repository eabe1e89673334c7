package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestStartUnixAndTCP(t *testing.T) {
	t.Parallel()
	began := time.Now()
	c := Start(t, Options{Settings: map[string]string{"application_name": "it's quoted"}})
	t.Logf("cluster started in %v (port %d, socket %s)", time.Since(began), c.Port(), c.Host())

	unix := connect(t, c.DSN("postgres", "postgres"))
	for setting, want := range map[string]string{
		"max_connections":    "300",
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"application_name":   "it's quoted",
		"server_encoding":    "UTF8",
		"lc_collate":         "C",
	} {
		if got := queryString(t, unix, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}

	c.Exec(t, `CREATE ROLE alice LOGIN PASSWORD 'sécret:@/'; CREATE TABLE t (v int); INSERT INTO t VALUES (1)`)
	c.CreateDB(t, "App-DB")
	tcp := connect(t, c.TCPDSN("alice", "sécret:@/", "App-DB"))
	if got := queryString(t, tcp, "SELECT current_user || '@' || current_database()"); got != "alice@App-DB" {
		t.Errorf("TCP session is %q", got)
	}
	if got := queryString(t, unix, "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'alice'"); got != "SCRAM-SHA-256" {
		t.Errorf("alice's password is stored as %q, want a SCRAM verifier", got)
	}

	_, err := pgx.Connect(context.Background(), c.TCPDSN("alice", "wrong", "postgres"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("wrong password: got %v, want SQLSTATE 28P01", err)
	}
	if _, err := os.Stat(filepath.Join(c.BinDir(), "psql")); err != nil {
		t.Errorf("BinDir has no psql: %v", err)
	}
}

func TestSSL(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{SSL: true})
	c.Exec(t, `CREATE ROLE bob LOGIN PASSWORD 'pw'`)
	if !strings.Contains(c.TCPDSN("bob", "pw", "postgres"), "sslmode=require") {
		t.Fatalf("TCPDSN %q does not require SSL", c.TCPDSN("bob", "pw", "postgres"))
	}
	conn := connect(t, c.TCPDSN("bob", "pw", "postgres"))
	if got := queryString(t, conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"); got != "true" {
		t.Errorf("connection is not encrypted (ssl = %s)", got)
	}
	verified := strings.Replace(c.TCPDSN("bob", "pw", "postgres"), "sslmode=require", "sslmode=verify-full&sslrootcert="+c.CertFile(), 1)
	connect(t, verified)

	fi, err := os.Stat(filepath.Join(c.dataDir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || int(fi.Sys().(*syscall.Stat_t).Uid) != c.install.uid() {
		t.Errorf("key file mode %v uid %d, want 0600 owned by %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, c.install.uid())
	}
}

func TestSetHBA(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{})
	c.Exec(t, `CREATE ROLE trusted LOGIN;
		SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5pw'`)
	ctx := context.Background()

	if conn, err := pgx.Connect(ctx, c.TCPDSN("trusted", "", "postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("passwordless TCP login succeeded under the default SCRAM rules")
	}
	if err := c.SetHBA([]string{
		"host all trusted 127.0.0.1/32 trust",
		"host all md5user 127.0.0.1/32 md5",
	}); err != nil {
		t.Fatal(err)
	}
	connect(t, c.TCPDSN("trusted", "", "postgres"))
	connect(t, c.TCPDSN("md5user", "md5pw", "postgres"))

	err := c.SetHBA([]string{"host all all 127.0.0.1/32 no-such-method"})
	if err == nil || !strings.Contains(err.Error(), "invalid pg_hba.conf") {
		t.Fatalf("invalid HBA line: got %v", err)
	}
	connect(t, c.TCPDSN("trusted", "", "postgres")) // previous rules still apply

	if err := c.SetHBA(nil); err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(ctx, c.TCPDSN("trusted", "", "postgres")); err == nil {
		conn.Close(ctx)
		t.Error("passwordless TCP login still works after restoring the defaults")
	}
}

func TestRestartKeepsPortAndData(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{})
	port := c.Port()
	c.Exec(t, `CREATE TABLE kept AS SELECT 42 AS v; CREATE ROLE carol LOGIN PASSWORD 'pw'`)

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Errorf("port changed from %d to %d", port, c.Port())
	}
	if got := queryString(t, connect(t, c.TCPDSN("carol", "pw", "postgres")), "SELECT 1::text"); got != "1" {
		t.Error(got)
	}
	if got := queryString(t, connect(t, c.DSN("postgres", "postgres")), "SELECT v::text FROM kept"); got != "42" {
		t.Errorf("kept.v = %s after restart", got)
	}

	// A killed server drops connections, and Restart recovers it.
	conn := connect(t, c.DSN("postgres", "postgres"))
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Error("query succeeded on a killed server")
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, connect(t, c.DSN("postgres", "postgres")), "SELECT v::text FROM kept"); got != "42" {
		t.Errorf("kept.v = %s after crash recovery", got)
	}
}

func TestStopRemovesEverything(t *testing.T) {
	t.Parallel()
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid := c.proc.Process.Pid
	conn := connect(t, c.DSN("postgres", "postgres")) // Stop must not wait for clients to leave
	var backend int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists: %v", c.dir, err)
	}
	for _, p := range []int{pid, backend} {
		if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (kill 0: %v)", p, err)
		}
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := c.Restart(); err == nil {
		t.Error("Restart after Stop succeeded")
	}
}

func TestParallelClusters(t *testing.T) {
	t.Parallel()
	var (
		wg       sync.WaitGroup
		clusters [2]*Cluster
	)
	for i := range clusters {
		wg.Go(func() { clusters[i] = Start(t, Options{MaxConnections: 50}) })
	}
	wg.Wait()
	a, b := clusters[0], clusters[1]
	if a.Port() == b.Port() || a.Host() == b.Host() {
		t.Fatalf("clusters share port %d/%d or socket %s/%s", a.Port(), b.Port(), a.Host(), b.Host())
	}
	a.Exec(t, `CREATE TABLE only_in_a ()`)
	b.Exec(t, `CREATE TABLE only_in_b ()`)
	for _, c := range clusters {
		got := queryString(t, connect(t, c.DSN("postgres", "postgres")),
			"SELECT string_agg(relname, ',') FROM pg_class WHERE relname LIKE 'only_in_%'")
		want := map[*Cluster]string{a: "only_in_a", b: "only_in_b"}[c]
		if got != want {
			t.Errorf("cluster on port %d has tables %q, want %q", c.Port(), got, want)
		}
		if got := queryString(t, connect(t, c.DSN("postgres", "postgres")), "SHOW max_connections"); got != "50" {
			t.Errorf("max_connections = %s, want 50", got)
		}
	}
}

// TestServerDiesWithTestProcess runs a child test process that starts a
// cluster and exits without Stop, as a crashed or timed-out test would.
func TestServerDiesWithTestProcess(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN_CHILD") != "" {
		c, err := New(Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("cluster %d %s\n", c.proc.Process.Pid, c.dir)
		os.Exit(0)
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestProcess$")
	cmd.Env = append(os.Environ(), "PGTEST_ORPHAN_CHILD=1")
	out, err := cmd.CombinedOutput()
	var (
		pid int
		dir string
	)
	if _, scanErr := fmt.Sscanf(string(out), "cluster %d %s", &pid, &dir); err != nil || scanErr != nil {
		t.Fatalf("child: %v, %v: %s", err, scanErr, out)
	}
	defer os.RemoveAll(dir)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			t.Fatalf("postgres %d outlived the process that started it", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMissingBinaries(t *testing.T) {
	t.Setenv("MANDATE_PG_BIN", t.TempDir())
	_, err := findBinDir()
	if err == nil || !strings.Contains(err.Error(), "does not contain the postgres and initdb binaries") {
		t.Errorf("got %v", err)
	}
}

func TestInvalidSetting(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("got %v, want an error quoting the server log", err)
	}
}

// BenchmarkStart measures New plus Stop, and reports New alone as start-ms.
func BenchmarkStart(b *testing.B) {
	var starting time.Duration
	for b.Loop() {
		began := time.Now()
		c, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		starting += time.Since(began)
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(starting.Milliseconds())/float64(b.N), "start-ms")
}
