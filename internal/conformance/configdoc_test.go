package conformance

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfigDoc keeps docs/config.md equal to what `mandate serve --help`
// says: every flag, its YAML key, type, default and help text. Run
// `go test ./internal/conformance -run ConfigDoc -update` after changing a
// flag.
func TestConfigDoc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "mandate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/mandate")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/mandate: %v\n%s", err, out)
	}
	help, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("mandate serve --help: %v\n%s", err, help)
	}
	flags, err := parseFlagHelp(string(help))
	if err != nil {
		t.Fatal(err)
	}
	if len(flags) < 10 {
		t.Fatalf("parsed only %d flags from mandate serve --help:\n%s", len(flags), help)
	}
	compareGolden(t, filepath.Join(repoRoot, "docs", "config.md"), renderConfigDoc(flags))
}

// helpFlag is one flag as Go's flag package prints it.
type helpFlag struct {
	name, typ, usage, def string
}

var defaultSuffix = regexp.MustCompile(` \(default (.*)\)$`)

// parseFlagHelp reads flag.PrintDefaults output: "  -name type" and then
// the usage on lines indented with a tab (or on the same line for short
// boolean flags).
func parseFlagHelp(help string) ([]helpFlag, error) {
	var flags []helpFlag
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "  -"):
			head, usage, _ := strings.Cut(strings.TrimPrefix(line, "  -"), "\t")
			name, typ, _ := strings.Cut(strings.TrimSpace(head), " ")
			flags = append(flags, helpFlag{name: name, typ: typ, usage: strings.TrimSpace(usage)})
		case strings.HasPrefix(line, "    \t") && len(flags) > 0:
			f := &flags[len(flags)-1]
			f.usage = strings.TrimSpace(f.usage + " " + strings.TrimSpace(line))
		}
	}
	for i := range flags {
		f := &flags[i]
		if m := defaultSuffix.FindStringSubmatch(f.usage); m != nil {
			f.def = strings.Trim(m[1], `"`)
			f.usage = strings.TrimSuffix(f.usage, m[0])
		}
		switch f.typ {
		case "":
			f.typ = "bool"
			if f.def == "" {
				f.def = "false"
			}
		case "value":
			f.typ = "list"
		}
	}
	return flags, sc.Err()
}

func renderConfigDoc(flags []helpFlag) string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from ` + "`mandate serve --help`" + ` by internal/conformance (TestConfigDoc).
     Do not edit: change the flag in cmd/mandate/config.go, then run
     go test ./internal/conformance -run ConfigDoc -update -->

` + "`mandate serve`" + ` reads an optional YAML file (` + "`--config mandate.yaml`" + `) and then its flags;
a flag given on the command line wins over the file. Every flag is a YAML key with dashes
turned into underscores (` + "`--idle-timeout 5m`" + ` is ` + "`idle_timeout: 5m`" + `). Unknown keys are errors
naming the key and its line. Durations use Go's syntax (` + "`500ms`, `30s`, `5m`, `1h`" + `); lists
are YAML sequences in the file and repeated or comma-separated flags on the command line.
The other commands (` + "`explain`, `check`, `delegate`, `consent`, `agent`, `token`, `migrate`" + `) accept
` + "`--config`, `--upstream`" + ` and the decision flags (policies, store, tokens, audit) with the same
meaning.

| flag | YAML key | type | default | meaning |
|---|---|---|---|---|
`)
	for _, f := range flags {
		key := "`" + strings.ReplaceAll(f.name, "-", "_") + "`"
		if f.name == "config" {
			key = "—"
		}
		def := "—"
		if f.def != "" {
			def = "`" + f.def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s | %s |\n", f.name, key, f.typ, def, strings.ReplaceAll(f.usage, "|", `\|`))
	}
	b.WriteString(`
A minimal enforcing configuration for the bank demo:

` + "```yaml" + `
listen: [127.0.0.1:6432]
upstream: postgres://mandate_app:secret@127.0.0.1:5432/bank
auth: jwt
jwks_file: /etc/mandate/jwks.json
jwt_issuer: https://idp.example.com/
jwt_audience: [mandate]
policy_dir: testdata/bank/policies
cedar_schema: testdata/bank/schema.cedarschema
entities: testdata/bank/entities.json
masks: testdata/bank/masks.yaml
audit_log: /var/log/mandate/audit.jsonl
assume_principals: [app]
` + "```" + `
`)
	return b.String()
}
