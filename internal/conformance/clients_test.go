package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// coreTranscript is what every client must report for the shared part of
// the scenario, whatever its golden file says: alice sees exactly her two
// accounts and her two incoming transactions, the statistics side door is
// refused with 42501 and the connection stays usable.
var coreTranscript = []string{
	"accounts: 101 2450.75, 102 18000.00",
	"params: 2",
	"refused: 42501",
	"after refusal: 2",
	"version: <version()>",
	`search_path: "$user", public`,
	"server_version_num: <server_version_num>",
}

// The pinned node-postgres release, installed once per machine under
// os.TempDir() (the npm registry must be reachable the first time).
const nodePg = "pg@8.16.3"

// jdbcJar is Debian's libpostgresql-jdbc-java.
const jdbcJar = "/usr/share/java/postgresql.jar"

// systemPython is Debian's interpreter, which python3-psycopg2 belongs to
// (a pyenv python3 earlier on PATH would not see it).
const systemPython = "/usr/bin/python3"

// TestClients runs the scenario with each client. The golden files state
// what each client must see; -update records what they see now, so review
// the diff: a new "error" line is a regression, not an expectation.
func TestClients(t *testing.T) {
	w := bankWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	facts, err := w.serverFacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clients := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, w *world) string
	}{
		{"psql", runPsql},
		{"pgx", runPgx},
		{"node-postgres", runNode},
		{"psycopg2", runPsycopg2},
		{"jdbc", runJDBC},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
			defer cancel()
			got := normalize(c.run(t, ctx, w), facts)
			for _, line := range coreTranscript {
				if !containsLine(got, line) {
					t.Errorf("transcript lacks %q", line)
				}
			}
			compareGolden(t, filepath.Join("testdata", "golden", c.name+".txt"), got)
		})
	}
}

// normalize replaces the server's version strings with placeholders and
// trims trailing blanks, so golden files hold across PostgreSQL releases.
func normalize(s string, facts map[string]string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	// Longest first: version() contains the shorter version strings.
	for _, k := range []string{"<version()>", "<server_version>", "<server_version_num>", "<server_version_short>"} {
		s = strings.ReplaceAll(s, facts[k], k)
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Join(lines, "\n") + "\n"
}

func containsLine(transcript, line string) bool {
	for _, l := range strings.Split(transcript, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// compareGolden fails with a line diff when got differs from the golden
// file, or rewrites the file under -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/conformance -update to create it)\ngot:\n%s", err, got)
	}
	if string(want) == got {
		return
	}
	t.Errorf("transcript differs from %s (-want +got):\n%s", path, lineDiff(string(want), got))
}

// lineDiff is a minimal diff: common prefix and suffix, then the middle of
// each side.
func lineDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	j := 0
	for j < len(a)-i && j < len(b)-i && a[len(a)-1-j] == b[len(b)-1-j] {
		j++
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "@@ line %d @@\n", i+1)
	for _, l := range a[i : len(a)-j] {
		sb.WriteString("-" + l + "\n")
	}
	for _, l := range b[i : len(b)-j] {
		sb.WriteString("+" + l + "\n")
	}
	return sb.String()
}

// need returns a program's path or fails the test with what to install.
func need(t *testing.T, program, install string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		t.Fatalf("%s not found: %s (or run .ci/run, which installs every client)", program, install)
	}
	return path
}

// run runs a client program with the world's PG* environment and returns
// its combined output, in order.
func run(t *testing.T, ctx context.Context, w *world, extraEnv []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(w.clientEnv(), extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

var psqlError = regexp.MustCompile(`(?m)psql:[^:\n]+:\d+: ERROR:  ([0-9A-Z]{5})\n`)

func runPsql(t *testing.T, ctx context.Context, w *world) string {
	psql := filepath.Join(w.pg.BinDir(), "psql")
	out := run(t, ctx, w, nil, psql, "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", filepath.Join("testdata", "client.psql"))
	return psqlError.ReplaceAllString(out, "$1\n")
}

func runNode(t *testing.T, ctx context.Context, w *world) string {
	node := need(t, "node", "apt-get install -y nodejs npm")
	modules := nodeModules(t, ctx)
	return run(t, ctx, w, []string{"NODE_PATH=" + modules}, node, filepath.Join("testdata", "client.js"))
}

// nodeModules installs nodePg once into a cache directory keyed by its
// version and returns its node_modules.
func nodeModules(t *testing.T, ctx context.Context) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "mandate-conformance-npm", strings.ReplaceAll(nodePg, "@", "-"))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "pg", "package.json")); err == nil {
		return modules
	}
	npm := need(t, "npm", "apt-get install -y nodejs npm")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error", nodePg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s (needs the npm registry once; the result is cached in %s): %v\n%s", nodePg, dir, err, out)
	}
	// Another run may have won the race; either copy will do.
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, statErr := os.Stat(filepath.Join(modules, "pg", "package.json")); statErr != nil {
			t.Fatal(err)
		}
	}
	return modules
}

func runPsycopg2(t *testing.T, ctx context.Context, w *world) string {
	if _, err := os.Stat(systemPython); err != nil {
		t.Fatalf("%s not found: apt-get install -y python3 python3-psycopg2", systemPython)
	}
	if out, err := exec.CommandContext(ctx, systemPython, "-c", "import psycopg2").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import psycopg2: apt-get install -y python3-psycopg2 (or run .ci/run)\n%s", systemPython, out)
	}
	return run(t, ctx, w, []string{"PYTHONDONTWRITEBYTECODE=1"}, systemPython, filepath.Join("testdata", "client.py"))
}

func runJDBC(t *testing.T, ctx context.Context, w *world) string {
	install := "apt-get install -y default-jdk-headless libpostgresql-jdbc-java"
	javac, java := need(t, "javac", install), need(t, "java", install)
	if _, err := os.Stat(jdbcJar); err != nil {
		t.Fatalf("%s not found: %s (or run .ci/run)", jdbcJar, install)
	}
	classes := t.TempDir()
	if out, err := exec.CommandContext(ctx, javac, "-d", classes, "-cp", jdbcJar, filepath.Join("testdata", "Client.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	return run(t, ctx, w, nil, java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classes+string(os.PathListSeparator)+jdbcJar, "Client")
}

// runPgx is the scenario with pgx, mandate's own driver: the extended
// protocol with its statement cache, as Go services use it.
func runPgx(t *testing.T, ctx context.Context, w *world) string {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://alice@%s/%s?sslmode=disable&application_name=conformance", w.addr, bankDB))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var sb strings.Builder
	out := func(label string, value any) { fmt.Fprintf(&sb, "%s: %v\n", label, value) }
	text := func(sql string, args ...any) string {
		// Text results, so values print as PostgreSQL writes them.
		rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
		if err != nil {
			return "error " + sqlState(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var cols []string
			for _, raw := range rows.RawValues() {
				cols = append(cols, string(raw))
			}
			lines = append(lines, strings.Join(cols, " "))
		}
		if err := rows.Err(); err != nil {
			return "error " + sqlState(err)
		}
		return strings.Join(lines, ", ")
	}
	out("accounts", text("SELECT id, balance FROM accounts ORDER BY id"))
	out("params", text("SELECT count(*) FROM transactions WHERE amount > $1", 0))
	_, err = conn.Exec(ctx, "SELECT * FROM pg_stats")
	out("refused", sqlState(err))
	out("after refusal", text("SELECT count(*) FROM accounts"))
	out("version", text("SELECT version()"))
	out("search_path", text("SHOW search_path"))
	out("server_version_num", text("SELECT current_setting('server_version_num')"))
	out("relations", strings.Join(collect(ctx, conn), ", "))

	// pgx-specific: binary results scanned into Go types, every exec mode.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		var n int64
		err := conn.QueryRow(ctx, "SELECT count(*) FROM transactions WHERE amount > $1", mode, -1000).Scan(&n)
		if err != nil {
			out("exec mode "+mode.String(), "error "+sqlState(err))
			continue
		}
		out("exec mode "+mode.String(), n)
	}
	var balance float64
	var opened time.Time
	err = conn.QueryRow(ctx, "SELECT balance, opened_at FROM accounts WHERE id = $1", 102).Scan(&balance, &opened)
	out("binary scan", fmt.Sprintf("%v %s %v", balance, opened.UTC().Format(time.RFC3339), err))
	out("server_version parameter", conn.PgConn().ParameterStatus("server_version"))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT * FROM pg_stats")
	out("refused in transaction", sqlState(err))
	_, err = tx.Exec(ctx, "SELECT 1")
	out("after refusal in transaction", sqlState(err))
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	out("after rollback", text("SELECT count(*) FROM accounts"))
	return sb.String()
}

// collect lists pg_class relations outside the system schemas as
// "schema.name kind".
func collect(ctx context.Context, conn *pgx.Conn) []string {
	rows, err := conn.Query(ctx, `SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1`)
	if err != nil {
		return []string{"error " + sqlState(err)}
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return []string{"error " + sqlState(err)}
	}
	return out
}

// sqlState returns err's SQLSTATE, "ok" for no error, or the error text.
func sqlState(err error) string {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &pe):
		return pe.Code
	}
	return err.Error()
}
