package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/internal/pgtest"
	"github.com/mandate-proxy/mandate/proxy"
)

// mandate demo: the bank world of SPEC §5 behind an enforcing proxy, in one
// command. Every step is one a user would run by hand (migrate, delegate,
// consent, agent, token --init-dev-key, serve --config), called here with
// the config file the demo writes, so the demo cannot drift from the CLI.

const demoUsage = `mandate demo [--listen 127.0.0.1:6432] [--admin-listen 127.0.0.1:9187] [--upstream URL] [--dir DIR]

Starts a throwaway PostgreSQL (or uses --upstream), loads the bank world, stores bob's
delegation, alice's and carol's consents and the assistant agent, and runs the proxy
until Ctrl-C, which stops everything it started and removes DIR.`

const (
	demoRole     = "mandate_demo"
	demoDatabase = "bank"
	pidFile      = "demo.pid" // marks DIR as a demo's, so a leftover may be replaced
)

// demoOptions are mandate demo's flags.
type demoOptions struct {
	listen, adminListen string
	upstream            string // admin URL of an existing server; empty: a throwaway one
	dir                 string
	bank                string // the bank world's files
}

// demo is one run: what it created, to be undone in reverse.
type demo struct {
	opts         demoOptions
	out          io.Writer
	sigs         <-chan os.Signal
	started      time.Time
	undo         []func() error
	config       string // path of the mandate.yaml it wrote
	appURL       string // the non-superuser upstream role on the bank database
	adminBankURL string // the administrator on the bank database
	bobGrant     string // bob's delegation id
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	opts, err := parseDemoFlags(args, stdout)
	if err != nil {
		return err
	}
	// The demo owns SIGINT and SIGTERM from the start, so Ctrl-C during the
	// preparation also cleans up; serve receives them from the same channel.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	d := &demo{opts: opts, out: stdout, sigs: sigs, started: time.Now()}
	err = d.prepare()
	if err == nil {
		err = d.runProxy(stderr)
	}
	if errors.Is(err, errInterrupted) {
		err = nil // Ctrl-C while preparing: stopping is what was asked
	}
	return errors.Join(err, d.cleanup())
}

func parseDemoFlags(args []string, stdout io.Writer) (demoOptions, error) {
	o := demoOptions{}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:6432", "address the proxy accepts clients on (TLS, a token as the password)")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9187", "address of /metrics, /healthz and /readyz")
	fs.StringVar(&o.upstream, "upstream", "", "postgres:// URL of an existing server and a role that may create roles and databases;\nthe demo creates role "+demoRole+" and database "+demoDatabase+" there and drops them on exit")
	fs.StringVar(&o.dir, "dir", filepath.Join(os.TempDir(), "mandate-demo"), "directory for the config, keys, certificate and audit log; removed on exit")
	fs.StringVar(&o.bank, "bank", filepath.Join("testdata", "bank"), "the bank world: schema.sql, policies/, schema.cedarschema, entities.json, masks.yaml")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printFlags(stdout, fs, demoUsage)
		return o, err
	case err != nil:
		return o, fmt.Errorf("%w (see 'mandate demo --help')", err)
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q (see 'mandate demo --help')", fs.Arg(0))
	}
	if o.bank, err = filepath.Abs(o.bank); err != nil {
		return o, err
	}
	if _, err := os.Stat(filepath.Join(o.bank, "schema.sql")); err != nil {
		return o, fmt.Errorf("the bank world is not at %s (run from the repository root or pass --bank): %w", o.bank, err)
	}
	return o, nil
}

// errInterrupted ends the preparation when a signal arrives.
var errInterrupted = errors.New("interrupted")

// prepare runs the steps up to a configured, populated world. Signals are
// looked at between steps: none of them takes long.
func (d *demo) prepare() error {
	steps := []struct {
		what string
		do   func() error
	}{
		{"creating " + d.opts.dir, d.makeDir},
		{d.databaseStep(), d.startDatabase},
		{"loading the bank world into database " + demoDatabase, d.loadBank},
		{"generating a development key and a TLS certificate", d.writeConfig},
		{"migrating the policy store", func() error { return d.cli(runMigrate, "") }},
		{"storing bob's delegation, consents and the assistant agent", d.storeState},
	}
	for _, s := range steps {
		select {
		case <-d.sigs:
			return errInterrupted
		default:
		}
		start := time.Now()
		fmt.Fprintf(d.out, "mandate demo: %s…", s.what)
		if err := s.do(); err != nil {
			fmt.Fprintln(d.out, " failed")
			return err
		}
		fmt.Fprintf(d.out, " %s\n", time.Since(start).Round(10*time.Millisecond))
	}
	return nil
}

func (d *demo) databaseStep() string {
	if d.opts.upstream != "" {
		return "creating role " + demoRole + " and database " + demoDatabase + " on " + redactURL(d.opts.upstream)
	}
	return "starting a throwaway PostgreSQL"
}

// makeDir creates the demo directory. A leftover of a demo that died
// without cleaning up is replaced; anything else there is left alone.
func (d *demo) makeDir() error {
	err := os.Mkdir(d.opts.dir, 0o700)
	if errors.Is(err, os.ErrExist) {
		pid, readErr := os.ReadFile(filepath.Join(d.opts.dir, pidFile))
		if readErr != nil {
			return fmt.Errorf("%s exists and is not a demo's directory: pass another --dir", d.opts.dir)
		}
		if n, _ := strconv.Atoi(strings.TrimSpace(string(pid))); n > 0 && processAlive(n) {
			return fmt.Errorf("another mandate demo (pid %d) is running in %s: stop it or pass another --dir", n, d.opts.dir)
		}
		if err = os.RemoveAll(d.opts.dir); err == nil {
			err = os.Mkdir(d.opts.dir, 0o700)
		}
	}
	if err != nil {
		return err
	}
	d.undo = append(d.undo, func() error { return os.RemoveAll(d.opts.dir) })
	return os.WriteFile(filepath.Join(d.opts.dir, pidFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// processAlive reports whether pid runs (possibly as another user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// startDatabase starts the throwaway cluster unless --upstream names a
// server, then creates the demo's non-superuser role and its database: the
// proxy refuses a superuser upstream, which would bypass every policy.
func (d *demo) startDatabase() error {
	adminURL := d.opts.upstream
	if adminURL == "" {
		c, err := pgtest.New(pgtest.Options{})
		if err != nil {
			return err
		}
		d.undo = append(d.undo, c.Stop)
		adminURL = c.DSN("postgres", "postgres")
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("--upstream %q: want a postgres:// URL", redactURL(adminURL))
	}
	password := make([]byte, 16)
	_, _ = rand.Read(password)
	u.User = url.UserPassword(demoRole, hex.EncodeToString(password))
	u.Path = "/" + demoDatabase
	d.appURL = u.String()

	role, db := pgx.Identifier{demoRole}.Sanitize(), pgx.Identifier{demoDatabase}.Sanitize()
	if err := execAdmin(adminURL, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, hex.EncodeToString(password))); err != nil {
		return err
	}
	d.dropOnExit(adminURL, "DROP ROLE "+role)
	if err := execAdmin(adminURL, fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, role)); err != nil {
		return err
	}
	d.dropOnExit(adminURL, "DROP DATABASE "+db+" WITH (FORCE)")
	admin, _ := url.Parse(adminURL)
	admin.Path = "/" + demoDatabase
	d.adminBankURL = admin.String()
	return nil
}

// dropOnExit undoes a creation on an --upstream server; a throwaway
// cluster goes away as a whole.
func (d *demo) dropOnExit(adminURL, sql string) {
	if d.opts.upstream != "" {
		d.undo = append(d.undo, func() error { return execAdmin(adminURL, sql) })
	}
}

// execAdmin runs one statement over a fresh connection (CREATE DATABASE
// cannot run in a transaction, so no connection is kept between them).
func execAdmin(adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("%s: %s", redactURL(adminURL), oneLine(err))
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", strings.SplitN(sql, " PASSWORD", 2)[0], err)
	}
	return nil
}

func (d *demo) loadBank() error {
	schema, err := os.ReadFile(filepath.Join(d.opts.bank, "schema.sql"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.appURL)
	if err != nil {
		return fmt.Errorf("%s: %s", redactURL(d.appURL), oneLine(err))
	}
	defer conn.Close(ctx)
	if _, err = conn.Exec(ctx, string(schema)); err != nil {
		return err
	}
	// DDL run directly on the database reaches the proxy's catalog at once;
	// an --upstream administrator that is no superuser cannot install it,
	// and the catalog is then re-read every minute.
	if err := execAdmin(d.adminBankURL, proxy.CatalogTriggerSQL); err != nil {
		fmt.Fprintf(d.out, " (no catalog event trigger: %s)", oneLine(err))
	}
	return nil
}

// demoConfig is the serve configuration the demo writes; the development
// key's lines come from mandate token --init-dev-key.
var demoConfig = template.Must(template.New("mandate.yaml").Funcs(template.FuncMap{"q": yamlString, "path": yamlPath}).Parse(`# Written by mandate demo; every mandate command takes it with --config.
listen: [{{q .Listen}}]
admin_listen: {{q .AdminListen}}
upstream: {{q .Upstream}}
auth: jwt
tls_cert: {{path .Dir "cert.pem"}}
tls_key: {{path .Dir "key.pem"}}
tls_required: true
policy_dir: {{path .Bank "policies"}}
cedar_schema: {{path .Bank "schema.cedarschema"}}
entities: {{path .Bank "entities.json"}}
masks: {{path .Bank "masks.yaml"}}
audit_log: {{path .Dir "audit.log"}}
shutdown_timeout: 5s
{{.DevKey}}`))

// yamlString quotes s as a YAML scalar (a JSON string is one), so any
// directory name or password is safe in the config.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func yamlPath(elem ...string) string { return yamlString(filepath.Join(elem...)) }

func (d *demo) writeConfig() error {
	if _, _, err := pgtest.WriteSelfSignedCert(d.opts.dir); err != nil {
		return err
	}
	var devKey bytes.Buffer
	if err := initDevKey(d.opts.dir, &devKey); err != nil {
		return err
	}
	var cfg bytes.Buffer
	err := demoConfig.Execute(&cfg, map[string]string{
		"Listen": d.opts.listen, "AdminListen": d.opts.adminListen, "Upstream": d.appURL,
		"Dir": d.opts.dir, "Bank": d.opts.bank, "DevKey": devKey.String(),
	})
	if err != nil {
		return err
	}
	d.config = filepath.Join(d.opts.dir, "mandate.yaml")
	return os.WriteFile(d.config, cfg.Bytes(), 0o600)
}

// storeState records the live state the personas of SPEC §5 rely on, with
// the same commands a user would type.
func (d *demo) storeState() error {
	var id bytes.Buffer
	if err := d.cliTo(&id, runDelegate, "grant --grantor alice --delegate bob --purpose tax --tables public.accounts,public.transactions --actions select --expires 720h",
		`--row-constraint=public.transactions=resource.category in ["tax", "income"]`); err != nil {
		return err
	}
	d.bobGrant = strings.TrimSpace(id.String())
	for _, args := range []string{
		"grant --subject alice --purpose analytics",
		"grant --subject carol --purpose analytics",
	} {
		if err := d.cli(runConsent, args); err != nil {
			return err
		}
	}
	return d.cli(runAgent, "register --id assistant --owner alice --tables public.accounts,public.transactions --actions select --masked public.customers.ssn,public.accounts.iban")
}

// cli runs a mandate command with the demo's config, discarding its output.
func (d *demo) cli(run func(args []string, stdout, stderr io.Writer) error, args string) error {
	return d.cliTo(io.Discard, run, args)
}

// cliTo is cli writing the command's output to w; extra are arguments that
// hold spaces.
func (d *demo) cliTo(w io.Writer, run func(args []string, stdout, stderr io.Writer) error, args string, extra ...string) error {
	argv := append(strings.Fields(args), extra...)
	if err := run(append(argv, "--config", d.config), w, io.Discard); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// runProxy runs the proxy exactly as mandate serve --config would, and
// prints the walkthrough once it accepts clients.
func (d *demo) runProxy(stderr io.Writer) error {
	cfg, err := loadServeConfig([]string{"--config", d.config})
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	return serve(cfg, log, d.sigs, func() {
		if err := d.writeEnv(); err != nil {
			log.Error("demo env file", "err", err)
		}
		d.printPersonas()
	})
}

// writeEnv writes DIR/env: the libpq variables that point psql at the
// proxy (verifying its certificate) and the paths the walkthrough uses.
func (d *demo) writeEnv() error {
	host, port, err := net.SplitHostPort(d.opts.listen)
	if err != nil {
		return err
	}
	env := fmt.Sprintf(`export MANDATE_DEMO=%s
export MANDATE_METRICS=http://%s/metrics
export MANDATE_BOB_DELEGATION=%s
export PGHOST=%s PGPORT=%s PGDATABASE=%s PGSSLMODE=verify-full PGSSLROOTCERT=%s/cert.pem
`, d.opts.dir, d.opts.adminListen, d.bobGrant, host, port, demoDatabase, d.opts.dir)
	return os.WriteFile(filepath.Join(d.opts.dir, "env"), []byte(env), 0o600)
}

// demoPersonas are SPEC §5's personas: who they are, how their token is
// minted, and a query that shows what they see.
var demoPersonas = []struct{ user, who, token, query string }{
	{"alice", "a customer: her own accounts and transactions", "--sub alice",
		"SELECT id, account_id, amount, category FROM transactions ORDER BY id LIMIT 5;"},
	{"carol", "a customer: her own profile, nobody else's", "--sub carol",
		"SELECT id, name, email, ssn FROM customers;"},
	{"bob", "alice's accountant: her tax and income transactions, while the delegation lasts", "--sub alice --act bob",
		"SELECT id, account_id, amount, category FROM transactions ORDER BY id LIMIT 5;"},
	{"assistant", "an AI agent acting for alice: her accounts with the iban masked", "--sub alice --act agent:assistant",
		"SELECT id, iban, balance FROM accounts ORDER BY id;"},
	{"sam", "support: customers with an open ticket assigned to him, ssn and phone masked", "--sub sam",
		"SELECT id, name, ssn, phone FROM customers ORDER BY id;"},
	{"dana", "an analyst (purpose analytics): transactions of consenting customers, ids hashed", "--sub dana --claim purpose=analytics",
		"SELECT count(*) FROM transactions;"},
}

func (d *demo) printPersonas() {
	mandate := os.Args[0]
	w := d.out
	fmt.Fprintf(w, "\nmandate demo is ready (%s). In another terminal, in this directory:\n\n", time.Since(d.started).Round(100*time.Millisecond))
	fmt.Fprintf(w, "  source %s/env\n\nthen connect as a persona (the token is the password) and try its query:\n", d.opts.dir)
	for _, p := range demoPersonas {
		fmt.Fprintf(w, "\n  %s — %s\n", p.user, p.who)
		fmt.Fprintf(w, "    PGPASSWORD=$(%s token --config $MANDATE_DEMO/mandate.yaml %s) psql -U %s\n", mandate, p.token, p.user)
		fmt.Fprintf(w, "    %s=> %s\n", demoDatabase, p.query)
	}
	fmt.Fprintf(w, `
Change the live state and watch the next statement change:
    %[1]s delegate revoke --config $MANDATE_DEMO/mandate.yaml $MANDATE_BOB_DELEGATION
    %[1]s consent withdraw --config $MANDATE_DEMO/mandate.yaml --subject carol --purpose analytics
    %[1]s explain --config $MANDATE_DEMO/mandate.yaml --as alice --actor bob "SELECT * FROM transactions"
Audit log: $MANDATE_DEMO/audit.log (%[1]s audit verify --config $MANDATE_DEMO/mandate.yaml)
Metrics:   curl -s $MANDATE_METRICS | grep ^mandate_

Press Ctrl-C to stop the proxy and PostgreSQL and remove %[2]s.
`, mandate, d.opts.dir)
}

// cleanup undoes what the demo created, newest first.
func (d *demo) cleanup() error {
	var errs []error
	for i := len(d.undo) - 1; i >= 0; i-- {
		errs = append(errs, d.undo[i]())
	}
	if len(d.undo) > 0 {
		fmt.Fprintf(d.out, "mandate demo: stopped; removed %s\n", d.opts.dir)
	}
	return errors.Join(errs...)
}
