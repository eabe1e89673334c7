package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// runAsMain makes the test binary act as the mandate command, so the README
// script test runs `bin/mandate …` without building a second binary.
const runAsMain = "MANDATE_TEST_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

var updateReadme = flag.Bool("update-readme", false, "rewrite README.md's {expect} blocks with the outputs of this run")

// readmeDemoDir is the demo directory the README shows (mandate demo's
// default on Linux); the test's own directory is reported as this one.
const readmeDemoDir = "/tmp/mandate-demo"

// TestReadme runs the README's walkthrough against a real `mandate demo`:
// every ```sh {test} block in order, each output compared with the
// ```text {expect} block that follows it, so the README cannot rot.
func TestReadme(t *testing.T) {
	for _, tool := range []string{"psql", "jq", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README walkthrough needs %s on PATH (apt-get install -y postgresql-client jq curl)", tool)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(string(readme))
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```sh {test} blocks")
	}
	work := demoWorkdir(t)
	dir := startDemo(t, work)

	var got []string
	for _, b := range blocks {
		out := runBlock(t, work, dir, b.script, b.expect == nil)
		got = append(got, out)
		if b.expect == nil || *updateReadme {
			continue
		}
		if want, have := normalize(*b.expect), normalize(out); want != have {
			t.Errorf("README block at line %d:\n%s\noutput differs from its {expect} block (normalized; - want, + got):\n%s\n(run go test ./cmd/mandate -run TestReadme -update-readme to accept)",
				b.line, b.script, lineDiff(want, have))
		}
	}
	if *updateReadme {
		if err := os.WriteFile(filepath.Join("..", "..", "README.md"), []byte(rewriteExpects(string(readme), blocks, got)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readmeBlock is a test script and, if the next fenced block is one, its
// expected output.
type readmeBlock struct {
	line        int
	script      string
	expect      *string
	expectStart int // byte range of the expect block's body in the README
	expectEnd   int
}

var fence = regexp.MustCompile("(?m)^```([^\n]*)\n((?s:.*?))^```[ \t]*$")

func readmeBlocks(readme string) []readmeBlock {
	var out []readmeBlock
	for _, m := range fence.FindAllStringSubmatchIndex(readme, -1) {
		info, body := readme[m[2]:m[3]], readme[m[4]:m[5]]
		switch strings.TrimSpace(info) {
		case "sh {test}":
			out = append(out, readmeBlock{line: strings.Count(readme[:m[0]], "\n") + 1, script: body})
		case "text {expect}":
			if n := len(out); n > 0 && out[n-1].expect == nil {
				out[n-1].expect, out[n-1].expectStart, out[n-1].expectEnd = &body, m[4], m[5]
			}
		}
	}
	return out
}

// rewriteExpects replaces each {expect} body with the matching output.
func rewriteExpects(readme string, blocks []readmeBlock, outputs []string) string {
	var b strings.Builder
	last := 0
	for i, bl := range blocks {
		if bl.expect == nil {
			continue
		}
		b.WriteString(readme[last:bl.expectStart])
		b.WriteString(outputs[i])
		last = bl.expectEnd
	}
	b.WriteString(readme[last:])
	return b.String()
}

// demoWorkdir is a directory laid out like the repository root for the
// README's commands: bin/mandate (this test binary) and testdata.
func demoWorkdir(t *testing.T) string {
	work := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testdata, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%s=1 exec '%s' \"$@\"\n", runAsMain, self)
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "bin", "mandate"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(testdata, filepath.Join(work, "testdata")); err != nil {
		t.Fatal(err)
	}
	return work
}

// startDemo runs `bin/mandate demo` on free ports until it is ready; at the
// end it sends SIGINT, as Ctrl-C does, and checks that the demo cleaned up.
func startDemo(t *testing.T, work string, args ...string) string {
	dir := filepath.Join(work, "demo")
	cmd := exec.Command(filepath.Join(work, "bin", "mandate"), append([]string{"demo",
		"--listen", freeAddr(t), "--admin-listen", freeAddr(t), "--dir", dir}, args...)...)
	cmd.Dir = work
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	ready := make(chan bool, 1)
	go func() {
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "mandate demo is ready") {
				ready <- true
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout) // keep the pipe drained
	}()
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return // killed: not ready in time
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("demo after Ctrl-C: %v\n%s", err, stderr.String())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("demo left %s behind (%v)", dir, err)
		}
	})
	select {
	case <-ready:
		t.Logf("demo ready after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // after it, stderr is complete
		t.Fatalf("demo not ready after 60s:\n%s", stderr.String())
	}
	return dir
}

// TestDemoUpstream runs the demo on an existing server: it creates its
// role and database there, serves from them, and drops both on exit.
func TestDemoUpstream(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	t.Cleanup(func() { // runs after the demo's own cleanup has stopped it
		var left []string
		for _, q := range []string{
			"SELECT datname FROM pg_database WHERE datname = '" + demoDatabase + "'",
			"SELECT rolname FROM pg_roles WHERE rolname = '" + demoRole + "'",
		} {
			conn, err := pgx.Connect(context.Background(), c.DSN("postgres", "postgres"))
			if err != nil {
				t.Fatal(err)
			}
			var name string
			if conn.QueryRow(context.Background(), q).Scan(&name) == nil {
				left = append(left, name)
			}
			conn.Close(context.Background())
		}
		if len(left) > 0 {
			t.Errorf("demo left %v on the upstream server", left)
		}
	})
	work := demoWorkdir(t)
	dir := startDemo(t, work, "--upstream", c.DSN("postgres", "postgres"))
	out := runBlock(t, work, dir, "PGPASSWORD=$(bin/mandate token --config $MANDATE_DEMO/mandate.yaml --sub carol) psql -U carol -Atc 'SELECT name FROM customers'", true)
	if out != "Carol Chen\n" {
		t.Errorf("carol through the demo on --upstream: got %q", out)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runBlock runs a README script with the demo's environment, in the
// workdir, and returns its output with the test's demo directory shown as
// the README's. A block with an {expect} may fail: its output says how.
func runBlock(t *testing.T, work, dir, script string, mustSucceed bool) string {
	script = strings.ReplaceAll(script, readmeDemoDir, dir)
	cmd := exec.Command("bash", "-o", "pipefail", "-c", "source "+dir+"/env\n"+script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(work, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil && mustSucceed {
		t.Errorf("README block failed: %v\n%s\n%s", err, script, out)
	}
	return strings.ReplaceAll(string(out), dir, readmeDemoDir)
}

// volatile are the parts of an output that differ from run to run.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<uuid>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "<time>"},
	{regexp.MustCompile(`\b[0-9a-f]{32,}\b`), "<hash>"},
	{regexp.MustCompile(`-?\b\d{12,}\b`), "<hashed id>"}, // mask keys are random per database
	{regexp.MustCompile(`-{2,}`), "--"},                  // psql rules follow the widths above
	{regexp.MustCompile(`[ \t]+`), " "},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

// lineDiff marks the lines of want and got from the first that differs.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	for _, l := range w[:i] {
		b.WriteString("  " + l + "\n")
	}
	for _, l := range w[i:] {
		b.WriteString("- " + l + "\n")
	}
	for _, l := range g[i:] {
		b.WriteString("+ " + l + "\n")
	}
	return b.String()
}
