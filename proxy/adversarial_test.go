package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The adversarial suite ("Attack it", part 1): cases grouped by attack
// class, each naming a persona, an attack and what must come of it — the
// rows the oracle (a direct connection as the table owner, with the
// persona's filter written by hand) returns, a refusal with a given
// SQLSTATE, or nothing outside the persona's scope anywhere.
//
// The last check applies to every case, whatever else it expects: every
// result row, command tag, notice, notification and error field a persona
// receives is searched for the values outside its scope (other customers'
// ssn, iban, name, e-mail, phone, balances, hidden transaction amounts and
// ticket bodies, raw values of columns masked for it), computed from the
// seed data by the oracle.
//
// A case that shows a real leak or wrong behaviour keeps its correct
// expectation and is listed in knownLeaks: its failure is logged and
// counted instead of failing the suite, and a fix shows up as "no longer
// shows".

// knownLeaks maps a case name to the leak or bug it exposes.
var knownLeaks = map[string]string{
	// Data outside the caller's scope.

	// Metadata and side channels. (At 83502a4 every side/explain-* case leaked too: the injected
	// filter and "Rows Removed by Filter: 44"; EXPLAIN of protected relations is now refused.)
	"write/insert-hidden-key-unique-violation": "INSERT of ticket id 4 (erin's) fails with 23505: alice learns the hidden " +
		"key exists (documented, as with RLS)",
	"write/on-conflict-do-nothing-probe": "INSERT … ON CONFLICT DO NOTHING answers INSERT 0 0 for hidden ticket 4 and " +
		"INSERT 0 1 for a free id (documented, as with RLS)",
}

// advCase is one attack.
type advCase struct {
	name    string
	persona string
	// setup runs first on the same connection (simple protocol); each
	// statement must succeed.
	setup []string
	sql   string
	// Expectations on sql's outcome (the last result of a multi-statement
	// query); none set means only the leak check applies, and then ok
	// says whether sql must succeed.
	oracle string   // same rows as this query on the owner's connection
	rows   []string // same rows as these (sorted)
	codes  []string // refused with one of these SQLSTATEs
	ok     bool
	tag    string // the command tag sql must end with
	// after runs on the same connection afterwards (e.g. ROLLBACK).
	after []string
	// unchanged names tables whose content must be the same afterwards.
	unchanged []string
	// run replaces all of the above with a custom attack.
	run func(x *advCtx) error
}

// advClass is one attack class, run in a bank world of its own.
type advClass struct {
	name  string
	prep  func(t *testing.T, w *bankWorld) // owner-side setup after the personas' state
	cases []advCase
}

// advCtx is what a case runs with.
type advCtx struct {
	t         *testing.T
	w         *bankWorld
	forbidden map[string][]string // persona → values outside its scope

	mu   sync.Mutex
	seen map[string][]string // persona → every text it received
	// shared connections for cases that leave no session state behind
	shared map[string]*pgx.Conn
}

// sharedConn returns persona's connection for plain cases without setup.
func (x *advCtx) sharedConn(persona string) (*pgx.Conn, error) {
	if c := x.shared[persona]; c != nil && !c.IsClosed() {
		return c, nil
	}
	c, err := x.as(persona)
	if err == nil {
		x.shared[persona] = c
	}
	return c, err
}

// personaIdentity is how each persona logs in: trust as itself, or the
// pooled application assuming a subject through actors.
var personaIdentity = map[string]struct {
	trust  bool
	sub    string
	actors []string
	claims map[string]any
}{
	"alice":     {trust: true},
	"carol":     {trust: true},
	"sam":       {trust: true},
	"app":       {trust: true},
	"bob":       {sub: "alice", actors: []string{"bob"}},
	"assistant": {sub: "alice", actors: []string{"agent:assistant"}},
	"dana":      {sub: "dana", claims: map[string]any{"purpose": "analytics"}},
}

// forbiddenWhere says, per persona, which rows of each table it must never
// see (customers, accounts, transactions, support_tickets), and extra
// queries for raw values of columns masked for it.
var forbiddenWhere = map[string][5]string{
	"alice":     {"id <> 1", "customer_id <> 1", "account_id NOT IN (101, 102)", "customer_id <> 1", ""},
	"carol":     {"id <> 2", "customer_id <> 2", "account_id <> 103", "customer_id <> 2", ""},
	"bob":       {"true", "customer_id <> 1", "NOT (account_id IN (101, 102) AND category IN ('tax', 'income'))", "true", ""},
	"assistant": {"true", "customer_id <> 1", "account_id NOT IN (101, 102)", "true", "SELECT iban FROM accounts"},
	"sam":       {"id NOT IN (2, 4)", "true", "true", "assignee IS DISTINCT FROM 'sam'", "SELECT ssn FROM customers UNION ALL SELECT phone FROM customers UNION ALL SELECT md5(ssn) FROM customers"},
	"dana":      {"true", "customer_id NOT IN (1, 2)", "account_id NOT IN (101, 102, 103)", "true", "SELECT iban FROM accounts UNION ALL SELECT balance::text FROM accounts WHERE balance <> round(balance / 1000) * 1000"},
	"app":       {"true", "true", "true", "true", ""},
}

func (x *advCtx) loadForbidden() {
	x.forbidden = map[string][]string{}
	for persona, wh := range forbiddenWhere {
		q := fmt.Sprintf(`SELECT DISTINCT v FROM (
			SELECT unnest(ARRAY[name, email, ssn, phone]) FROM customers WHERE %s
			UNION ALL SELECT unnest(ARRAY[iban, balance::text]) FROM accounts WHERE %s
			UNION ALL SELECT amount::text FROM transactions WHERE %s
			UNION ALL SELECT body FROM support_tickets WHERE %s`, wh[0], wh[1], wh[2], wh[3])
		if wh[4] != "" {
			q += " UNION ALL " + wh[4]
		}
		q += ") f(v) WHERE length(v) >= 6"
		x.forbidden[persona] = x.oracleRows(q)
	}
}

// as opens a fresh connection for persona, recording its notices and
// notifications.
func (x *advCtx) as(persona string) (*pgx.Conn, error) {
	id, ok := personaIdentity[persona]
	if !ok {
		return nil, fmt.Errorf("unknown persona %q", persona)
	}
	user := persona
	if !id.trust {
		user = "app"
	}
	conn, err := x.connectRaw(persona, user, nil)
	if err != nil || id.trust {
		return conn, err
	}
	tok := x.w.token(x.t, id.sub, id.actors, id.claims)
	if _, err := conn.Exec(ctxT(x.t), "SET mandate.token = '"+tok+"'", pgx.QueryExecModeSimpleProtocol); err != nil {
		return nil, fmt.Errorf("assume %s: %w", persona, err)
	}
	return conn, nil
}

// connectRaw logs in with trust as user; what arrives is recorded for
// persona. params are extra startup parameters.
func (x *advCtx) connectRaw(persona, user string, params map[string]string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", user, x.w.p.addr, x.w.db))
	if err != nil {
		return nil, err
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		x.record(persona, "notice: "+n.Message, n.Detail, n.Hint, n.Where)
	}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		x.record(persona, "notification "+n.Channel+": "+n.Payload)
	}
	conn, err := pgx.ConnectConfig(ctxT(x.t), cfg)
	if err != nil {
		x.recordErr(persona, err)
		return nil, err
	}
	x.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// saw returns the first text recorded for persona that match accepts.
func (x *advCtx) saw(persona string, match func(string) bool) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range x.seen[persona] {
		if match(s) {
			return s, true
		}
	}
	return "", false
}

func (x *advCtx) record(persona string, texts ...string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, s := range texts {
		if s != "" {
			x.seen[persona] = append(x.seen[persona], s)
		}
	}
}

func (x *advCtx) recordErr(persona string, err error) {
	if err == nil {
		return
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		x.record(persona, pe.Message, pe.Detail, pe.Hint, pe.Where)
		return
	}
	x.record(persona, err.Error())
}

// exec runs sql in the simple protocol and returns the last result's rows
// (text, sorted), its command tag and the error; everything is recorded
// for persona.
func (x *advCtx) exec(persona string, conn *pgx.Conn, sql string) ([]string, string, error) {
	results, err := conn.PgConn().Exec(ctxT(x.t), sql).ReadAll()
	x.recordErr(persona, err)
	var out []string
	tag := ""
	for i, r := range results {
		x.recordErr(persona, r.Err)
		if r.Err != nil && err == nil {
			err = r.Err
		}
		tag = r.CommandTag.String()
		x.record(persona, tag)
		var rs []string
		for _, row := range r.Rows {
			s := textRow(row)
			x.record(persona, s)
			rs = append(rs, s)
		}
		if i == len(results)-1 {
			out = rs
		}
	}
	sort.Strings(out)
	return out, tag, err
}

// query runs sql in the extended protocol (pgx's statement cache) and
// records what arrives.
func (x *advCtx) query(persona string, conn *pgx.Conn, sql string, args ...any) ([]string, error) {
	got, err := rows(x.t, conn, sql, args...)
	x.recordErr(persona, err)
	for _, r := range got {
		x.record(persona, r)
	}
	return got, err
}

func textRow(row [][]byte) string {
	parts := make([]string, len(row))
	for i, v := range row {
		if v == nil {
			parts[i] = "<null>"
		} else {
			parts[i] = string(v)
		}
	}
	return strings.Join(parts, "|")
}

// oracleRows runs sql directly as the table owner.
func (x *advCtx) oracleRows(sql string) []string {
	x.t.Helper()
	results, err := x.w.owner.PgConn().Exec(ctxT(x.t), sql).ReadAll()
	if err != nil {
		x.t.Fatalf("oracle %s: %v", sql, err)
	}
	var out []string
	for _, row := range results[len(results)-1].Rows {
		out = append(out, textRow(row))
	}
	sort.Strings(out)
	return out
}

// digest fingerprints a table's content on the oracle.
func (x *advCtx) digest(table string) string {
	return strings.Join(x.oracleRows("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM "+table+" t"), "")
}

// leaks returns the forbidden values persona received.
func (x *advCtx) leaks(persona string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var found []string
	for _, f := range x.forbidden[persona] {
		for _, s := range x.seen[persona] {
			if strings.Contains(s, f) {
				found = append(found, fmt.Sprintf("%q in %q", f, clip(s)))
				break
			}
		}
	}
	return found
}

func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// runPlain runs a case without a custom attack.
func (x *advCtx) runPlain(c advCase) error {
	before := map[string]string{}
	for _, tb := range c.unchanged {
		before[tb] = x.digest(tb)
	}
	open := x.as
	if len(c.setup) == 0 && len(c.after) == 0 {
		open = x.sharedConn
	}
	conn, err := open(c.persona)
	if err != nil {
		return err
	}
	for _, s := range c.setup {
		if _, _, err := x.exec(c.persona, conn, s); err != nil {
			return fmt.Errorf("setup %q: %v", s, err)
		}
	}
	got, tag, err := x.exec(c.persona, conn, c.sql)
	for _, s := range c.after {
		_, _, _ = x.exec(c.persona, conn, s)
	}
	var problems []string
	if c.tag != "" && (err != nil || tag != c.tag) {
		problems = append(problems, fmt.Sprintf("want command tag %q, got %q (%v)", c.tag, tag, err))
	}
	switch {
	case len(c.codes) > 0:
		if !slices.Contains(c.codes, sqlState(err)) {
			problems = append(problems, fmt.Sprintf("want refusal %v, got %s rows=%q err=%v", c.codes, tag, got, err))
		}
	case c.oracle != "" || c.rows != nil:
		want := c.rows
		if c.oracle != "" {
			want = x.oracleRows(c.oracle)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("want rows %q, got error %v", want, err))
		} else if strings.Join(got, "\n") != strings.Join(want, "\n") {
			problems = append(problems, fmt.Sprintf("got rows %q, want %q", got, want))
		}
	case c.ok && err != nil:
		problems = append(problems, fmt.Sprintf("want success, got %v", err))
	}
	for _, tb := range c.unchanged {
		if after := x.digest(tb); after != before[tb] {
			problems = append(problems, fmt.Sprintf("table %s changed", tb))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// runCase runs one case and applies the leak check to every persona it
// used.
func (x *advCtx) runCase(c advCase) error {
	x.mu.Lock()
	x.seen = map[string][]string{}
	x.mu.Unlock()
	var err error
	if c.run != nil {
		err = c.run(x)
	} else {
		err = x.runPlain(c)
	}
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	x.mu.Lock()
	personas := make([]string, 0, len(x.seen))
	for p := range x.seen {
		personas = append(personas, p)
	}
	x.mu.Unlock()
	sort.Strings(personas)
	for _, p := range personas {
		if l := x.leaks(p); len(l) > 0 {
			problems = append(problems, fmt.Sprintf("%s received values outside its scope: %s", p, strings.Join(l, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// Constructors for the common shapes.

func same(name, persona, sql, oracle string) advCase {
	return advCase{name: name, persona: persona, sql: sql, oracle: oracle}
}

func refuse(name, persona, sql string, codes ...string) advCase {
	return advCase{name: name, persona: persona, sql: sql, codes: codes}
}

// clean expects nothing but the leak check; ok says sql must succeed.
func clean(name, persona, sql string, ok bool) advCase {
	return advCase{name: name, persona: persona, sql: sql, ok: ok}
}

func custom(name string, run func(x *advCtx) error) advCase {
	return advCase{name: name, run: run}
}

const (
	stDenied      = "42501"
	stUnsupported = "0A000"
	stUndefined   = "42P01"
)

// denied is the usual "refused, whichever way": denied or unsupported.
var deniedOrUnsupported = []string{stDenied, stUnsupported}

func TestAdversarial(t *testing.T) {
	started := time.Now()
	classes := []advClass{
		advNameResolution(), advDynamicSQL(), advSideChannels(), advMaskInference(),
		advCatalogs(), advWrites(), advProtocol(), advDelegation(),
	}
	names := map[string]bool{}
	total := 0
	for _, cl := range classes {
		for _, c := range cl.cases {
			if names[c.name] {
				t.Errorf("duplicate case name %q", c.name)
			}
			names[c.name] = true
			total++
		}
	}
	for name := range knownLeaks {
		if !names[name] {
			t.Errorf("knownLeaks names no case: %q", name)
		}
	}
	if total < 150 {
		t.Errorf("%d cases, want at least 150", total)
	}

	type tally struct{ tried, passed, leaks int }
	var summary []string
	var leakLog []string
	for _, cl := range classes {
		var n tally
		t.Run(cl.name, func(t *testing.T) {
			w := startBank(t)
			setUpPersonaState(t, w)
			if cl.prep != nil {
				cl.prep(t, w)
			}
			x := &advCtx{t: t, w: w, shared: map[string]*pgx.Conn{}}
			x.loadForbidden()
			for _, c := range cl.cases {
				n.tried++
				x.t = t
				err := x.runCase(c)
				leak, known := knownLeaks[c.name]
				switch {
				case err == nil && known:
					n.passed++
					t.Logf("known leak no longer shows (remove it from knownLeaks): %s", c.name)
				case err == nil:
					n.passed++
				case known:
					n.leaks++
					leakLog = append(leakLog, c.name)
					t.Logf("KNOWN LEAK %s: %s\n    observed: %v", c.name, leak, err)
				default:
					t.Errorf("%s: %v", c.name, err)
				}
			}
		})
		summary = append(summary, fmt.Sprintf("%-18s tried %3d, passed %3d, known leaks %2d", cl.name, n.tried, n.passed, n.leaks))
	}
	t.Logf("adversarial suite, %d cases in %v:\n  %s\n  known leaks shown: %s", total,
		time.Since(started).Round(time.Millisecond), strings.Join(summary, "\n  "), strings.Join(leakLog, ", "))
}
