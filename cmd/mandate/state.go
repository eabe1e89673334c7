package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/store"
)

// The live-state commands: `mandate delegate|consent|agent`. Each is a group
// of subcommands over the policy store; every write is broadcast to the
// proxies by the store's triggers, so nothing here talks to a proxy.
//
// This file also holds the small CLI kit the other state-changing commands
// (migrate, token, audit) share: subcommand dispatch, flag parsing and list
// output.

func runDelegate(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("delegate", []subcommand{
		{"grant", "let a delegate act for a grantor; prints the new delegation id", delegateGrant},
		{"revoke", "end a delegation now; prints the revocation time", delegateRevoke},
		{"list", "list delegations", delegateList},
	}, args, stdout)
}

func runConsent(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("consent", []subcommand{
		{"grant", "record a subject's consent to a purpose", func(args []string, stdout io.Writer) error {
			return consentSet("grant", true, args, stdout)
		}},
		{"withdraw", "record a subject's withdrawal of consent to a purpose", func(args []string, stdout io.Writer) error {
			return consentSet("withdraw", false, args, stdout)
		}},
		{"list", "list consent answers, withdrawn ones included", consentList},
	}, args, stdout)
}

func runAgent(args []string, stdout, stderr io.Writer) error {
	return runSubcommand("agent", []subcommand{
		{"register", "register an AI agent and the scope it may act within", agentRegister},
		{"disable", "stop an agent from acting; prints the time", agentDisable},
		{"list", "list agents, disabled ones included", agentList},
	}, args, stdout)
}

func delegateGrant(args []string, stdout io.Writer) error {
	var (
		d                  policy.Delegation
		actions            []string
		rowConstraints     = rowConstraintFlag{}
		notBefore, expires string
	)
	cfg, _, err := parseCommand("delegate grant",
		"mandate delegate grant --grantor USER --delegate USER --tables T,… --actions select,… [flags]\n\n"+
			"Stores a delegation and prints only its id, so scripts can capture it.",
		0, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&d.Grantor, "grantor", "", "subject whose rights are delegated")
			fs.StringVar(&d.Delegate, "delegate", "", "subject who may act for the grantor")
			fs.Var(&listFlag{dst: &d.Tables}, "tables", "schema-qualified tables delegated, e.g. public.accounts (repeat or comma-separate)")
			fs.Var(&listFlag{dst: &actions}, "actions", "actions delegated: select, insert, update, delete (repeat or comma-separate)")
			fs.Var(&listFlag{dst: &d.Columns}, "columns", "visible columns as schema.table.column; default: all columns of --tables")
			fs.Var(rowConstraints, "row-constraint", "TABLE=CONDITION: a Cedar condition over resource limiting TABLE's rows,\ne.g. 'public.transactions=resource.category in [\"tax\",\"income\"]' (repeatable)")
			fs.StringVar(&d.Purpose, "purpose", "", "purpose of use the delegation is limited to")
			fs.StringVar(&notBefore, "not-before", "", "start of the delegation, RFC 3339; default: now")
			fs.StringVar(&expires, "expires", "", "end of the delegation: RFC 3339, or a duration (720h) after --not-before or now; default: until revoked")
		})
	if err != nil {
		return err
	}
	d.Actions = parseActions(actions)
	d.RowConstraint = rowConstraints
	if d.NotBefore, err = parseWhen("not-before", notBefore, time.Time{}, false); err != nil {
		return err
	}
	from := d.NotBefore
	if from.IsZero() {
		from = time.Now()
	}
	if d.ExpiresAt, err = parseWhen("expires", expires, from, true); err != nil {
		return err
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		id, err := s.GrantDelegation(ctx, d)
		if err == nil {
			fmt.Fprintln(stdout, id)
		}
		return err
	})
}

func delegateRevoke(args []string, stdout io.Writer) error {
	cfg, ids, err := parseCommand("delegate revoke", "mandate delegate revoke [flags] ID\n\n"+
		"Ends the delegation now, on every proxy from its next statement, and prints the revocation time.",
		1, args, stdout, nil)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("missing delegation ID (see mandate delegate list)")
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		at, err := s.RevokeDelegation(ctx, ids[0])
		if err == nil {
			fmt.Fprintln(stdout, formatTime(at))
		}
		return err
	})
}

func delegateList(args []string, stdout io.Writer) error {
	var (
		f              store.DelegationFilter
		active, asJSON bool
	)
	cfg, _, err := parseCommand("delegate list", "mandate delegate list [--grantor USER] [--delegate USER] [--active] [--json]",
		0, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&f.Grantor, "grantor", "", "only delegations from this grantor")
			fs.StringVar(&f.Delegate, "delegate", "", "only delegations to this delegate")
			fs.BoolVar(&active, "active", false, "only delegations in force now (started, not expired, not revoked)")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object per line")
		})
	if err != nil {
		return err
	}
	now := time.Now()
	if active {
		f.ActiveAt = now
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		ds, err := s.ListDelegations(ctx, f)
		if err != nil {
			return err
		}
		return printList(stdout, asJSON, ds,
			[]string{"ID", "GRANTOR", "DELEGATE", "STATUS", "ACTIONS", "TABLES", "COLUMNS", "PURPOSE", "NOT BEFORE", "EXPIRES", "ROW CONSTRAINTS"},
			func(d policy.Delegation) []string {
				return []string{d.ID, d.Grantor, d.Delegate, delegationStatus(&d, now), joinActions(d.Actions),
					join(d.Tables), join(d.Columns), d.Purpose, formatTime(d.NotBefore), formatTime(d.ExpiresAt),
					formatConstraints(d.RowConstraint)}
			},
			func(d policy.Delegation) any {
				return delegationJSON{
					ID: d.ID, Grantor: d.Grantor, Delegate: d.Delegate, Tables: d.Tables, Actions: d.Actions,
					Columns: d.Columns, RowConstraint: d.RowConstraint, Purpose: d.Purpose,
					NotBefore: timePtr(d.NotBefore), ExpiresAt: timePtr(d.ExpiresAt), RevokedAt: timePtr(d.RevokedAt),
					CreatedAt: d.CreatedAt, Status: delegationStatus(&d, now),
				}
			})
	})
}

// delegationJSON is a delegation as `delegate list --json` prints it: the
// store's column names, absent times omitted rather than year 1.
type delegationJSON struct {
	ID            string            `json:"id"`
	Grantor       string            `json:"grantor"`
	Delegate      string            `json:"delegate"`
	Tables        []string          `json:"tables"`
	Actions       []grant.Action    `json:"actions"`
	Columns       []string          `json:"columns"`
	RowConstraint map[string]string `json:"row_constraint"`
	Purpose       string            `json:"purpose"`
	NotBefore     *time.Time        `json:"not_before,omitempty"`
	ExpiresAt     *time.Time        `json:"expires_at,omitempty"`
	RevokedAt     *time.Time        `json:"revoked_at,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	Status        string            `json:"status"`
}

// delegationStatus says why a delegation does or does not grant at now.
func delegationStatus(d *policy.Delegation, now time.Time) string {
	switch {
	case d.Active(now):
		return "active"
	case !d.RevokedAt.IsZero() && !now.Before(d.RevokedAt):
		return "revoked"
	case !d.NotBefore.IsZero() && now.Before(d.NotBefore):
		return "pending"
	}
	return "expired"
}

func consentSet(verb string, granted bool, args []string, stdout io.Writer) error {
	var subject, purpose string
	cfg, _, err := parseCommand("consent "+verb, "mandate consent "+verb+" --subject USER --purpose PURPOSE [flags]",
		0, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&subject, "subject", "", "subject (data owner) answering")
			fs.StringVar(&purpose, "purpose", "", "purpose of use the answer is about, e.g. analytics")
		})
	if err != nil {
		return err
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		if err := s.SetConsent(ctx, subject, purpose, granted); err != nil {
			return err
		}
		if granted {
			fmt.Fprintf(stdout, "%s consents to %s\n", subject, purpose)
		} else {
			fmt.Fprintf(stdout, "%s withdrew consent to %s\n", subject, purpose)
		}
		return nil
	})
}

func consentList(args []string, stdout io.Writer) error {
	var (
		f      store.ConsentFilter
		asJSON bool
	)
	cfg, _, err := parseCommand("consent list", "mandate consent list [--subject USER] [--purpose PURPOSE] [--json]",
		0, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&f.Subject, "subject", "", "only this subject's answers")
			fs.StringVar(&f.Purpose, "purpose", "", "only answers about this purpose")
			fs.BoolVar(&asJSON, "json", false, "print one JSON object per line")
		})
	if err != nil {
		return err
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		cs, err := s.ListConsents(ctx, f)
		if err != nil {
			return err
		}
		return printList(stdout, asJSON, cs, []string{"SUBJECT", "PURPOSE", "CONSENT", "CHANGED"},
			func(c policy.Consent) []string {
				answer := "granted"
				if !c.Granted {
					answer = "withdrawn"
				}
				return []string{c.Subject, c.Purpose, answer, formatTime(c.At)}
			},
			func(c policy.Consent) any {
				return struct {
					Subject   string    `json:"subject"`
					Purpose   string    `json:"purpose"`
					Granted   bool      `json:"granted"`
					ChangedAt time.Time `json:"changed_at"`
				}{c.Subject, c.Purpose, c.Granted, c.At}
			})
	})
}

func agentRegister(args []string, stdout io.Writer) error {
	var (
		a       policy.Agent
		actions []string
	)
	cfg, _, err := parseCommand("agent register",
		"mandate agent register --id ID --owner USER --tables T,… --actions select,… [--masked COL,…] [flags]\n\n"+
			"An id is registered once: to change an agent's scope, disable it and register a new id.\n"+
			"Tokens name the agent as an actor with sub \"agent:ID\" (mandate token --act agent:ID).",
		0, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&a.ID, "id", "", "agent id")
			fs.StringVar(&a.Owner, "owner", "", "the user it may act for; \"*\" for any user")
			fs.Var(&listFlag{dst: &a.Tables}, "tables", "schema-qualified tables it may touch (repeat or comma-separate)")
			fs.Var(&listFlag{dst: &actions}, "actions", "actions it may take: select, insert, update, delete (repeat or comma-separate)")
			fs.Var(&listFlag{dst: &a.Masked}, "masked", "columns it only ever sees masked, as schema.table.column (repeat or comma-separate)")
		})
	if err != nil {
		return err
	}
	a.Actions = parseActions(actions)
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		if err := s.RegisterAgent(ctx, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "registered agent %s for %s\n", a.ID, a.Owner)
		return nil
	})
}

func agentDisable(args []string, stdout io.Writer) error {
	cfg, ids, err := parseCommand("agent disable", "mandate agent disable [flags] ID\n\n"+
		"Stops the agent acting, on every proxy from its next statement, and prints the time. It cannot be re-enabled.",
		1, args, stdout, nil)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("missing agent ID (see mandate agent list)")
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		at, err := s.DisableAgent(ctx, ids[0])
		if err == nil {
			fmt.Fprintln(stdout, formatTime(at))
		}
		return err
	})
}

func agentList(args []string, stdout io.Writer) error {
	var asJSON bool
	cfg, _, err := parseCommand("agent list", "mandate agent list [--json]", 0, args, stdout, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	})
	if err != nil {
		return err
	}
	return withStore(cfg, func(ctx context.Context, s *store.Store) error {
		as, err := s.ListAgents(ctx)
		if err != nil {
			return err
		}
		return printList(stdout, asJSON, as, []string{"ID", "OWNER", "STATUS", "ACTIONS", "TABLES", "MASKED", "DISABLED"},
			func(a policy.Agent) []string {
				return []string{a.ID, a.Owner, agentStatus(a), joinActions(a.Actions), join(a.Tables), join(a.Masked), formatTime(a.Disabled)}
			},
			func(a policy.Agent) any {
				return struct {
					ID         string         `json:"id"`
					Owner      string         `json:"owner"`
					Tables     []string       `json:"tables"`
					Actions    []grant.Action `json:"actions"`
					Masked     []string       `json:"masked"`
					DisabledAt *time.Time     `json:"disabled_at,omitempty"`
					Status     string         `json:"status"`
				}{a.ID, a.Owner, a.Tables, a.Actions, a.Masked, timePtr(a.Disabled), agentStatus(a)}
			})
	})
}

func agentStatus(a policy.Agent) string {
	if a.Disabled.IsZero() {
		return "enabled"
	}
	return "disabled"
}

// --- the CLI kit shared by the state, migrate, token and audit commands ---

// subcommand is one verb of a command group (`mandate delegate grant`).
type subcommand struct {
	name    string
	summary string
	run     func(args []string, stdout io.Writer) error
}

// runSubcommand dispatches args to the named verb of group; with no verb or
// --help it prints the group's verbs.
func runSubcommand(group string, subs []subcommand, args []string, stdout io.Writer) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand: %s (see 'mandate %s --help')", strings.Join(names, ", "), group)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(stdout, "Usage: mandate %s %s [flags]\n\nSubcommands:\n", group, strings.Join(names, "|"))
		for _, s := range subs {
			fmt.Fprintf(stdout, "  %-10s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(stdout, "\nRun 'mandate %s <subcommand> --help' for its flags.\n", group)
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(args[1:], stdout)
		}
	}
	return fmt.Errorf("unknown subcommand %q: want %s", args[0], strings.Join(names, ", "))
}

// parseCommand parses a command's args: the flags declare adds, then the
// shared ones (--config, --store, … from loadCommandConfig). Flags may also
// follow the positional arguments (`delegate revoke ID --config f`), of
// which there may be at most maxArgs. --help prints usage and the flags to
// stdout and returns flag.ErrHelp.
func parseCommand(name, usage string, maxArgs int, args []string, stdout io.Writer, declare func(*flag.FlagSet)) (serveConfig, []string, error) {
	newFlagSet := func() *flag.FlagSet {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard) // errors are returned as one line, help goes to stdout
		if declare != nil {
			declare(fs)
		}
		return fs
	}
	// A first flag set, declared but not parsed, tells which flags take a value.
	probe := newFlagSet()
	if _, err := loadCommandConfig(probe, nil); err != nil {
		return serveConfig{}, nil, err
	}
	fs := newFlagSet()
	cfg, err := loadCommandConfig(fs, flagsFirst(probe, args))
	switch {
	case errors.Is(err, flag.ErrHelp):
		printFlags(stdout, fs, usage)
		return cfg, nil, err
	case err != nil:
		return cfg, nil, fmt.Errorf("%w (see 'mandate %s --help')", err, name)
	case fs.NArg() > maxArgs:
		return cfg, nil, fmt.Errorf("unexpected argument %q (see 'mandate %s --help')", fs.Arg(maxArgs), name)
	}
	return cfg, fs.Args(), nil
}

// flagsFirst moves positional arguments after the flags, where the flag
// package expects them. fs tells a flag that takes a value from a boolean
// one; "--" ends the flags as usual.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if f := fs.Lookup(name); f != nil && !isBoolFlag(f) {
				if i+1 == len(args) {
					return flags // let the flag package report the missing value
				}
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(append(flags, "--"), positional...)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// withStore runs do against the policy store over one connection.
func withStore(cfg serveConfig, do func(ctx context.Context, s *store.Store) error) error {
	ctx := context.Background()
	conn, err := connectStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return explainStoreError(do(ctx, store.New(conn)))
}

// connectStore opens a connection to the policy store (--store, else
// --upstream), giving up after --upstream-connect-timeout.
func connectStore(ctx context.Context, cfg serveConfig) (*pgx.Conn, error) {
	url, err := cfg.storeURL()
	if err != nil {
		return nil, err
	}
	if cfg.UpstreamConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.UpstreamConnectTimeout)
		defer cancel()
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("policy store: %s", oneLine(err))
	}
	return conn, nil
}

// oneLine flattens pgx's connect error, which lists every address tried on
// its own line (twice with sslmode=prefer), into one line.
func oneLine(err error) string {
	var parts []string
	for _, p := range strings.Split(err.Error(), "\n") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// explainStoreError adds the fix to the error every command meets on a
// database that was never migrated.
func explainStoreError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w (is the policy store migrated? run mandate migrate)", err)
	}
	return err
}

// printList writes items as an aligned table under header, or with asJSON
// as one JSON object per line (for jq and scripts).
func printList[T any](w io.Writer, asJSON bool, items []T, header []string, row func(T) []string, object func(T) any) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, it := range items {
			if err := enc.Encode(object(it)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, it := range items {
		fmt.Fprintln(tw, strings.Join(row(it), "\t"))
	}
	return tw.Flush()
}

// rowConstraintFlag collects repeated --row-constraint TABLE=CONDITION.
type rowConstraintFlag map[string]string

func (r rowConstraintFlag) String() string { return formatConstraints(r) }

func (r rowConstraintFlag) Set(v string) error {
	// Table names hold no '=', conditions may ("resource.kind == \"tax\"").
	table, cond, ok := strings.Cut(v, "=")
	table, cond = strings.TrimSpace(table), strings.TrimSpace(cond)
	if !ok || table == "" || cond == "" {
		return errors.New("want TABLE=CONDITION, e.g. public.transactions=resource.category == \"tax\"")
	}
	if _, dup := r[table]; dup {
		return fmt.Errorf("second row constraint for %s (combine the conditions with &&)", table)
	}
	r[table] = cond
	return nil
}

// parseWhen reads a time flag: RFC 3339, or when durationOK a positive
// duration after from. Empty means unset.
func parseWhen(flagName, v string, from time.Time, durationOK bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if durationOK {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return from.Add(d), nil
		}
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time (2030-01-31T00:00:00Z) or a positive duration (720h)", flagName, v)
	}
	return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time (2030-01-31T00:00:00Z)", flagName, v)
}

// parseActions lowercases action names; the store's constraints validate
// them, so a typo is reported in the store's words.
func parseActions(ss []string) []grant.Action {
	out := make([]grant.Action, len(ss))
	for i, s := range ss {
		out[i] = grant.Action(strings.ToLower(s))
	}
	return out
}

func joinActions(as []grant.Action) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = string(a)
	}
	return join(ss)
}

// join renders a list cell; "-" keeps empty cells visible in the table.
func join(ss []string) string {
	if len(ss) == 0 {
		return "-"
	}
	return strings.Join(ss, ",")
}

func formatConstraints(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for t, c := range m {
		parts = append(parts, t+": "+c)
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
