package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// cli runs `mandate args…` through run, as main does, and returns the exit
// code and both outputs.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustCLI runs a command that must succeed and returns its stdout.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != 0 {
		t.Fatalf("mandate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// failCLI runs a command that must fail with exit 1 and a one-line error
// containing want.
func failCLI(t *testing.T, want string, args ...string) {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != 1 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("mandate %s: exit %d, stderr %q, stdout %q; want exit 1 and one line containing %q",
			strings.Join(args, " "), code, errOut, out, want)
	}
}

// migratedStore starts a cluster, migrates it with mandate migrate and
// returns the store URL.
func migratedStore(t *testing.T) string {
	t.Helper()
	dsn := pgtest.Start(t, pgtest.Options{}).DSN("postgres", "postgres")
	mustCLI(t, "migrate", "--store", dsn)
	return dsn
}

func TestDelegateCommands(t *testing.T) {
	dsn := migratedStore(t)

	id := strings.TrimSpace(mustCLI(t, "delegate", "grant", "--store", dsn,
		"--grantor", "alice", "--delegate", "bob",
		"--tables", "public.accounts,public.transactions", "--actions", "SELECT",
		"--columns", "public.accounts.iban", "--columns", "public.transactions.amount",
		"--row-constraint", `public.transactions=resource.category in ["tax","income"]`,
		"--purpose", "tax", "--expires", "720h"))
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(id) {
		t.Fatalf("delegate grant printed %q, want only the id", id)
	}
	// A second, future delegation, with flags after nothing and a fixed window.
	future := strings.TrimSpace(mustCLI(t, "delegate", "grant", "--store", dsn,
		"--grantor", "carol", "--delegate", "bob", "--tables", "public.accounts", "--actions", "select",
		"--not-before", "2999-01-01T00:00:00Z", "--expires", "24h"))

	// The store's constraints speak for themselves.
	failCLI(t, "a subject cannot delegate to itself", "delegate", "grant", "--store", dsn,
		"--grantor", "alice", "--delegate", "alice", "--tables", "public.accounts", "--actions", "select")
	failCLI(t, "each row constraint must be a Cedar condition string keyed by one of the delegated tables",
		"delegate", "grant", "--store", dsn, "--grantor", "alice", "--delegate", "bob",
		"--tables", "public.accounts", "--actions", "select", "--row-constraint", "public.other=true")
	failCLI(t, `invalid value "nocondition" for flag -row-constraint: want TABLE=CONDITION`, "delegate", "grant", "--row-constraint", "nocondition")
	failCLI(t, `--not-before "tomorrow": want an RFC 3339 time`, "delegate", "grant", "--not-before", "tomorrow")

	table := mustCLI(t, "delegate", "list", "--store", dsn, "--grantor", "alice")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "ROW CONSTRAINTS") {
		t.Fatalf("delegate list:\n%s", table)
	}
	for _, want := range []string{id, "alice", "bob", "active", "select", "public.accounts,public.transactions",
		"public.accounts.iban,public.transactions.amount", "tax", `public.transactions: resource.category in ["tax","income"]`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("delegate list row %q lacks %q", lines[1], want)
		}
	}
	// Columns line up: every header starts where its cell does.
	if strings.Index(lines[0], "GRANTOR") != strings.Index(lines[1], "alice") {
		t.Errorf("delegate list is not aligned:\n%s", table)
	}

	// --active leaves out the future delegation; --json is one object a line.
	active := mustCLI(t, "delegate", "list", "--store", dsn, "--delegate", "bob", "--active", "--json")
	got := decodeLines(t, active)
	if len(got) != 1 || got[0]["id"] != id || got[0]["status"] != "active" || got[0]["purpose"] != "tax" ||
		got[0]["expires_at"] == nil || got[0]["not_before"] != nil {
		t.Fatalf("delegate list --active --json:\n%s", active)
	}
	if rc, ok := got[0]["row_constraint"].(map[string]any); !ok || rc["public.transactions"] != `resource.category in ["tax","income"]` {
		t.Errorf("row_constraint = %v", got[0]["row_constraint"])
	}
	all := decodeLines(t, mustCLI(t, "delegate", "list", "--store", dsn, "--json"))
	if len(all) != 2 || all[1]["id"] != future || all[1]["status"] != "pending" {
		t.Fatalf("delegate list --json: %v", all)
	}

	// Revoke prints the time; flags may follow the ID.
	at := strings.TrimSpace(mustCLI(t, "delegate", "revoke", id, "--store", dsn))
	if _, err := time.Parse(time.RFC3339, at); err != nil {
		t.Fatalf("delegate revoke printed %q: %v", at, err)
	}
	failCLI(t, "delegation already revoked at "+at, "delegate", "revoke", "--store", dsn, id)
	failCLI(t, "not found", "delegate", "revoke", "--store", dsn, "00000000-0000-0000-0000-000000000000")
	failCLI(t, "not found", "delegate", "revoke", "--store", dsn, "not-a-uuid")
	failCLI(t, "missing delegation ID", "delegate", "revoke", "--store", dsn)
	if out := mustCLI(t, "delegate", "list", "--store", dsn, "--grantor", "alice"); !strings.Contains(out, "revoked") {
		t.Errorf("revoked delegation not shown as revoked:\n%s", out)
	}
	if out := mustCLI(t, "delegate", "list", "--store", dsn, "--active"); strings.Count(out, "\n") != 1 {
		t.Errorf("delegate list --active after revoke and with only a future delegation:\n%s", out)
	}
}

func TestConsentCommands(t *testing.T) {
	dsn := migratedStore(t)
	if out := mustCLI(t, "consent", "grant", "--store", dsn, "--subject", "dana", "--purpose", "analytics"); out != "dana consents to analytics\n" {
		t.Errorf("consent grant printed %q", out)
	}
	mustCLI(t, "consent", "grant", "--store", dsn, "--subject", "erin", "--purpose", "analytics")
	mustCLI(t, "consent", "grant", "--store", dsn, "--subject", "dana", "--purpose", "marketing")
	if out := mustCLI(t, "consent", "withdraw", "--store", dsn, "--subject", "dana", "--purpose", "analytics"); out != "dana withdrew consent to analytics\n" {
		t.Errorf("consent withdraw printed %q", out)
	}
	failCLI(t, "a consent needs a subject and a purpose", "consent", "grant", "--store", dsn, "--subject", "dana")

	table := mustCLI(t, "consent", "list", "--store", dsn, "--subject", "dana")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "analytics") || !strings.Contains(lines[1], "withdrawn") ||
		!strings.Contains(lines[2], "marketing") || !strings.Contains(lines[2], "granted") {
		t.Fatalf("consent list --subject dana:\n%s", table)
	}
	got := decodeLines(t, mustCLI(t, "consent", "list", "--store", dsn, "--purpose", "analytics", "--json"))
	if len(got) != 2 || got[0]["subject"] != "dana" || got[0]["granted"] != false ||
		got[1]["subject"] != "erin" || got[1]["granted"] != true || got[1]["changed_at"] == nil {
		t.Fatalf("consent list --purpose analytics --json: %v", got)
	}
}

func TestAgentCommands(t *testing.T) {
	dsn := migratedStore(t)
	mustCLI(t, "agent", "register", "--store", dsn, "--id", "assistant", "--owner", "alice",
		"--tables", "public.accounts,public.customers", "--actions", "select",
		"--masked", "public.customers.ssn,public.accounts.iban")
	mustCLI(t, "agent", "register", "--store", dsn, "--id", "reporter", "--owner", "*",
		"--tables", "public.transactions", "--actions", "select")
	failCLI(t, "agent already registered", "agent", "register", "--store", dsn, "--id", "assistant", "--owner", "bob",
		"--tables", "public.accounts", "--actions", "select")
	failCLI(t, "agent actions must be one or more of select, insert, update, delete", "agent", "register", "--store", dsn,
		"--id", "x", "--owner", "bob", "--tables", "public.accounts", "--actions", "read")

	at := strings.TrimSpace(mustCLI(t, "agent", "disable", "--store", dsn, "assistant"))
	if _, err := time.Parse(time.RFC3339, at); err != nil {
		t.Fatalf("agent disable printed %q: %v", at, err)
	}
	failCLI(t, "agent already disabled", "agent", "disable", "assistant", "--store", dsn)
	failCLI(t, "not found", "agent", "disable", "nobody", "--store", dsn)

	table := mustCLI(t, "agent", "list", "--store", dsn)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "assistant") || !strings.Contains(lines[1], "disabled") ||
		!strings.Contains(lines[1], "public.customers.ssn,public.accounts.iban") ||
		!strings.Contains(lines[2], "reporter") || !strings.Contains(lines[2], "enabled") {
		t.Fatalf("agent list:\n%s", table)
	}
	got := decodeLines(t, mustCLI(t, "agent", "list", "--store", dsn, "--json"))
	if len(got) != 2 || got[0]["id"] != "assistant" || got[0]["disabled_at"] == nil || got[0]["owner"] != "alice" ||
		got[1]["owner"] != "*" || got[1]["disabled_at"] != nil || got[1]["status"] != "enabled" {
		t.Fatalf("agent list --json: %v", got)
	}
}

// TestStoreFromConfig reads the store URL from --config, with a flag given
// after the positional argument.
func TestStoreFromConfig(t *testing.T) {
	dsn := migratedStore(t)
	cfgPath := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(cfgPath, []byte("store: "+dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "agent", "register", "--config", cfgPath, "--id", "a1", "--owner", "alice", "--tables", "public.t", "--actions", "select")
	mustCLI(t, "agent", "disable", "a1", "--config", cfgPath)
	if out := mustCLI(t, "agent", "list", "--config", cfgPath); !strings.Contains(out, "a1") {
		t.Fatalf("agent list via config:\n%s", out)
	}
}

func TestStateCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delegate"}, "missing subcommand: grant, revoke, list"},
		{[]string{"delegate", "lend"}, `unknown subcommand "lend": want grant, revoke, list`},
		{[]string{"consent", "list", "--bogus"}, "flag provided but not defined: -bogus (see 'mandate consent list --help')"},
		{[]string{"agent", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"agent", "disable", "x", "--store"}, "flag needs an argument: -store"},
		{[]string{"delegate", "grant", "--expires", "soon"}, `--expires "soon": want an RFC 3339 time`},
		{[]string{"delegate", "list"}, "no policy store: set --store (or --upstream)"},
		{[]string{"agent", "list", "--store", "postgres://127.0.0.1:1/x?connect_timeout=5"}, "policy store: failed to connect"},
		{[]string{"agent", "list", "--config", "/nonexistent/mandate.yaml"}, "no such file"},
	} {
		failCLI(t, tc.want, tc.args...)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"migrate", "--help"},
		{"delegate", "--help"}, {"delegate", "grant", "--help"}, {"delegate", "revoke", "-h"}, {"delegate", "list", "--help"},
		{"consent", "help"}, {"consent", "grant", "--help"}, {"consent", "withdraw", "--help"}, {"consent", "list", "--help"},
		{"agent", "--help"}, {"agent", "register", "--help"}, {"agent", "disable", "--help"}, {"agent", "list", "--help"},
		{"token", "--help"},
		{"audit", "--help"}, {"audit", "verify", "--help"},
	} {
		code, out, errOut := cli(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: mandate "+args[0]) || errOut != "" {
			t.Errorf("mandate %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		// A verb's help lists its own flags and the shared ones.
		if len(args) == 3 || args[0] == "token" || args[0] == "migrate" || args[1] == "verify" {
			if !strings.Contains(out, "-config") || !strings.Contains(out, "-store") {
				t.Errorf("mandate %s: help lacks the shared flags:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	if _, out, _ := cli(t, "delegate", "grant", "--help"); !strings.Contains(out, "-row-constraint") || !strings.Contains(out, "-expires") {
		t.Errorf("delegate grant --help:\n%s", out)
	}
}

func decodeLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		objs = append(objs, m)
	}
	return objs
}
