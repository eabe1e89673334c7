package proxy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// runTool runs one of PostgreSQL's client programs against the proxy.
func runTool(t *testing.T, p *testProxy, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(pg.BinDir(), name), args...)
	cmd.Env = append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(p.port()), "PGDATABASE="+appDB,
		"PGUSER=alice", "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPsql(t *testing.T) {
	p := startProxy(t, nil)
	if out := runTool(t, p, "psql", "-XAtc", "SELECT 'through ' || 'mandate'"); strings.TrimSpace(out) != "through mandate" {
		t.Fatalf("psql -c: %q", out)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "in.tsv")
	if err := os.WriteFile(data, []byte("1\tone\n2\ttwo\n3\tthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.tsv")
	script := filepath.Join(dir, "script.sql")
	err := os.WriteFile(script, []byte(`\set ON_ERROR_STOP on
CREATE TEMP TABLE words(n int, w text);
\copy words FROM '`+data+`'
SELECT count(*) AS copied FROM words;
\copy (SELECT w FROM words WHERE n > 1 ORDER BY n) TO '`+out+`'
\d words
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	res := runTool(t, p, "psql", "-X", "-f", script)
	if !strings.Contains(res, "COPY 3") || !strings.Contains(res, "copied") || !strings.Contains(res, `Table "pg_temp_`) {
		t.Fatalf("psql script output:\n%s", res)
	}
	got, err := os.ReadFile(out)
	if err != nil || string(got) != "two\nthree\n" {
		t.Fatalf("\\copy to: %q %v", got, err)
	}
}

func TestPgbench(t *testing.T) {
	p := startProxy(t, nil)
	runTool(t, p, "pgbench", "-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out := runTool(t, p, "pgbench", "-S", "-n", "-c", "4", "-j", "2", "-t", "200", "-M", mode)
		if !strings.Contains(out, "number of transactions actually processed: 800/800") || !strings.Contains(out, "number of failed transactions: 0") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
	}
}
