//go:build soak

// The soak is built only with -tags soak (make soak): it runs for minutes.

package proxy

// The soak: every persona of the bank world through one enforcing proxy for
// $MANDATE_SOAK (e.g. 5m; `make soak`). Not part of `make test`.

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mandate-proxy/mandate/audit"
	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/policy"
)

// soakSessionLength is how many statements a soak client sends before it
// reconnects: sessions come and go throughout the soak.
const soakSessionLength = 250

// soakStatement is one statement a persona sends, and the SQLSTATE it must
// be refused with ("" when it must be allowed).
type soakStatement struct {
	sql     string
	refusal string
}

// soakPersona is how a persona logs in and what it sends, in turn.
type soakPersona struct {
	name    string
	login   string   // trust login user
	assume  string   // subject named with SET mandate.token; "" for none
	actors  []string // actor chain for assume
	claims  map[string]any
	queries []soakStatement
}

var soakPersonas = []soakPersona{
	{name: "alice", login: "alice", queries: []soakStatement{
		{"SELECT id, balance FROM accounts", ""},
		{"SELECT count(*) FROM transactions", ""},
		{"SELECT name, ssn FROM customers", ""},
		{"UPDATE customers SET phone = phone WHERE id = 1", ""},
		{"SELECT * FROM pg_stats", codeInsufficientPriv},
	}},
	{name: "carol", login: "carol", queries: []soakStatement{
		{"SELECT id FROM accounts", ""},
		{"SELECT t.id, a.iban FROM transactions t JOIN accounts a ON a.id = t.account_id", ""},
	}},
	{name: "bob", login: "app", assume: "alice", actors: []string{"bob"}, queries: []soakStatement{
		{"SELECT id, amount FROM transactions", ""},
		{"SELECT * FROM customers", codeInsufficientPriv},
		{"SELECT id FROM accounts", ""},
	}},
	{name: "assistant", login: "app", assume: "alice", actors: []string{"agent:assistant"}, queries: []soakStatement{
		{"SELECT iban FROM accounts", ""},
		{"SELECT sum(amount) FROM transactions", ""},
		{"DELETE FROM transactions", codeInsufficientPriv},
	}},
	{name: "sam", login: "sam", queries: []soakStatement{
		{"SELECT id, ssn FROM customers", ""},
		{"SELECT subject FROM support_tickets WHERE status = 'open'", ""},
	}},
	{name: "dana", login: "app", assume: "dana", claims: map[string]any{"purpose": "analytics"}, queries: []soakStatement{
		{"SELECT id FROM transactions", ""},
		{"SELECT DISTINCT customer_id FROM accounts", ""},
		{"SELECT name FROM customers", codeInsufficientPriv},
	}},
}

// soakStats are the numbers a soak reports.
type soakStats struct {
	statements atomic.Int64 // sent by the clients (and answered)
	refusals   atomic.Int64 // refused as intended
	sessions   atomic.Int64
	assumes    atomic.Int64 // SET mandate.token: one audit record each

	mu         sync.Mutex
	unexpected []string
	rowCounts  map[string]int // persona/statement → rows, the first time
}

func (st *soakStats) fail(format string, args ...any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.unexpected) < 20 {
		st.unexpected = append(st.unexpected, fmt.Sprintf(format, args...))
	}
}

// sameCount checks a statement returns as many rows as it did first.
func (st *soakStats) sameCount(key string, n int) {
	st.mu.Lock()
	first, seen := st.rowCounts[key]
	if !seen {
		st.rowCounts[key] = n
	}
	st.mu.Unlock()
	if seen && first != n {
		st.fail("%s: %d rows, first %d", key, n, first)
	}
}

func TestSoak(t *testing.T) {
	env := cmp.Or(os.Getenv("MANDATE_SOAK"), "5m")
	duration, err := time.ParseDuration(env)
	if err != nil || duration <= 0 {
		t.Fatalf("MANDATE_SOAK=%q: want a duration such as 5m", env)
	}
	w := startBank(t)
	ctx := context.Background()
	w.grantBob(t, time.Now().Add(24*time.Hour+duration))
	if err := w.store.RegisterAgent(ctx, policy.Agent{ID: "assistant", Owner: "alice",
		Tables: []string{"public.accounts", "public.transactions"}, Actions: []grant.Action{grant.Select},
		Masked: []string{"public.customers.ssn", "public.accounts.iban"}}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"alice", "carol"} {
		if err := w.store.SetConsent(ctx, sub, "analytics", true); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, w)
	auditRecords := func() int {
		t.Helper()
		if err := w.p.srv.cfg.Audit.Flush(); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(w.audit)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n, err := audit.Verify(f)
		if err != nil {
			t.Fatalf("audit log: %v", err)
		}
		return n
	}
	recordsBefore := auditRecords()

	const perPersona = 2
	st := &soakStats{rowCounts: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range soakPersonas {
		for k := range perPersona {
			wg.Go(func() { soakClient(t, w, p, k, st, stop) })
		}
	}

	// Sample goroutines and heap every 10 s (six times at least).
	interval := min(10*time.Second, duration/6)
	type sample struct {
		at         time.Duration
		goroutines int
		heap       uint64
		statements int64
	}
	var samples []sample
	begin := time.Now()
	tick := time.NewTicker(interval)
	for time.Since(begin) < duration {
		<-tick.C
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		samples = append(samples, sample{time.Since(begin).Round(time.Second), runtime.NumGoroutine(), ms.HeapInuse, st.statements.Load()})
	}
	tick.Stop()
	close(stop)
	wg.Wait()

	for _, s := range samples {
		t.Logf("t=%v goroutines=%d heap_inuse=%.1f MiB statements=%d", s.at, s.goroutines, float64(s.heap)/(1<<20), s.statements)
	}
	sent := st.statements.Load()
	t.Logf("%d statements (%.0f/s) in %d sessions by %d clients, %d refused as intended",
		sent, float64(sent)/duration.Seconds(), st.sessions.Load(), len(soakPersonas)*perPersona, st.refusals.Load())
	for _, u := range st.unexpected {
		t.Errorf("unexpected: %s", u)
	}
	if sent == 0 {
		t.Fatal("no statement ran")
	}

	// Stable, not growing: from the second sample (after warm-up) to the
	// last, goroutines stay within a few per client and the heap within a
	// tolerance. (It crept +1 MiB/min while each token's exp/iat/jti were
	// part of the grant cache key; measured +0.1 MiB/min since.)
	if len(samples) >= 3 {
		first, last := samples[1], samples[len(samples)-1]
		if last.goroutines > first.goroutines+4*len(soakPersonas)*perPersona {
			t.Errorf("goroutines grew from %d to %d", first.goroutines, last.goroutines)
		}
		heaps := make([]uint64, 0, len(samples)-1)
		for _, s := range samples[1:] {
			heaps = append(heaps, s.heap)
		}
		if tolerance := max(first.heap/2, 16<<20); last.heap > first.heap+tolerance {
			t.Errorf("heap in use grew by %d bytes (tolerance %d; monotonic: %v): %v",
				last.heap-first.heap, tolerance, slices.IsSorted(heaps), heaps)
		}
		t.Logf("heap in use: %+.1f MiB/min after warm-up", (float64(last.heap)-float64(first.heap))/(1<<20)/(last.at-first.at).Minutes())
	}

	// One audit record per login, per SET mandate.token and per statement
	// sent, refusals included; all of them written (by the time the client
	// saw its answer) and the chain intact.
	logins, assumes := st.sessions.Load(), st.assumes.Load()
	if got := auditRecords() - recordsBefore; int64(got) != sent+logins+assumes {
		t.Errorf("audit records: %d, statements sent: %d, logins: %d, SET mandate.token: %d", got, sent, logins, assumes)
	} else {
		t.Logf("audit: %d records, one per login, SET mandate.token and statement, chain verified", got)
	}
}

// soakClient plays one persona until stop: sessions of
// soakSessionLength statements, alternating the simple and the extended
// protocol from one session to the next.
func soakClient(t *testing.T, w *bankWorld, p soakPersona, k int, st *soakStats, stop <-chan struct{}) {
	ctx := context.Background()
	for session := 0; ; session++ {
		select {
		case <-stop:
			return
		default:
		}
		mode := pgx.QueryExecModeCacheStatement
		if (session+k)%2 == 0 {
			mode = pgx.QueryExecModeSimpleProtocol
		}
		conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", p.login, w.p.addr, w.db))
		if err != nil {
			st.fail("%s: connect: %v", p.name, err)
			return
		}
		st.sessions.Add(1)
		if p.assume != "" {
			tok := w.token(t, p.assume, p.actors, p.claims)
			if _, err := conn.Exec(ctx, "SET mandate.token = '"+tok+"'", pgx.QueryExecModeSimpleProtocol); err != nil {
				st.fail("%s: assume: %v", p.name, err)
				conn.Close(ctx)
				return
			}
			st.assumes.Add(1)
		}
		for i := range soakSessionLength {
			q := p.queries[(i+k)%len(p.queries)]
			n, err := soakRun(ctx, conn, q.sql, mode)
			st.statements.Add(1)
			switch {
			case q.refusal != "" && sqlState(err) == q.refusal:
				st.refusals.Add(1)
			case q.refusal != "":
				st.fail("%s: %s: want %s, got %v", p.name, q.sql, q.refusal, err)
			case err != nil:
				st.fail("%s: %s: %v", p.name, q.sql, err)
			default:
				st.sameCount(p.name+": "+q.sql, n)
			}
			if i%25 == 0 {
				select {
				case <-stop:
					conn.Close(ctx)
					return
				default:
				}
			}
		}
		conn.Close(ctx)
	}
}

// soakRun runs one statement and returns its row count.
func soakRun(ctx context.Context, conn *pgx.Conn, sql string, mode pgx.QueryExecMode) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !strings.HasPrefix(sql, "SELECT") {
		tag, err := conn.Exec(ctx, sql, mode)
		return int(tag.RowsAffected()), err
	}
	rows, err := conn.Query(ctx, sql, mode)
	if err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	return n, rows.Err()
}
