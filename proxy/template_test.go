package proxy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mandate-proxy/mandate/policy"
)

// TestTemplateDecisionsEqualColdOnes: statements that differ only in their
// constants are served from a template after the first, and each such
// decision is exactly what a cold rewrite (an enforcer with an empty
// cache) decides, for personas with filters and masks.
func TestTemplateDecisionsEqualColdOnes(t *testing.T) {
	w := startBank(t)
	setUpPersonaState(t, w)
	m := NewMetrics()
	callers := map[string]caller{
		"alice":     {principal: principal{Subject: "alice", Method: "jwt"}},
		"bob":       {principal: principal{Subject: "alice", Actors: []policy.Actor{{Kind: policy.ActorDelegate, ID: "bob"}}, Method: "jwt"}},
		"assistant": {principal: principal{Subject: "alice", Actors: []policy.Actor{{Kind: policy.ActorAgent, ID: "assistant"}}, Method: "jwt"}},
		"dana":      {principal: principal{Subject: "dana", Method: "jwt", Claims: map[string]any{"purpose": "analytics"}}},
	}
	reads := []func(i int) string{
		func(i int) string { return fmt.Sprintf("SELECT id, iban, balance FROM accounts WHERE id = %d", i) },
		func(i int) string {
			return fmt.Sprintf("SELECT t.amount, a.iban FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE t.amount > %d AND a.iban <> 'X%d'", i, i)
		},
		func(i int) string {
			return fmt.Sprintf("SELECT count(*) FROM transactions WHERE amount BETWEEN %d AND 1e6 LIMIT 3", i)
		},
	}
	// Writes to protected tables are deparsed whole, with write checks.
	writes := []func(i int) string{
		func(i int) string {
			return fmt.Sprintf("INSERT INTO support_tickets (id, customer_id, subject, body, status) VALUES (%d, 1, 'subject %d', 'body', 'open') RETURNING id", 100+i, i)
		},
		func(i int) string {
			return fmt.Sprintf("UPDATE customers SET email = 'alice%d@example.org' WHERE id = 1 AND name <> 'x%d'", i, i)
		},
	}
	type tc struct {
		who   string
		shape func(i int) string
	}
	var cases []tc
	for name := range callers {
		for _, r := range reads {
			cases = append(cases, tc{name, r})
		}
	}
	for _, wr := range writes {
		cases = append(cases, tc{"alice", wr})
	}
	for _, k := range cases {
		c := callers[k.who]
		c.clientAddr, c.sessionID, c.upstreamUser = "127.0.0.1", "1", appRole
		for i := 1; i <= 4; i++ {
			sql := k.shape(i)
			got := w.enforcer.decideFor(c, sql, m)
			cold := (&Enforcer{Engine: w.enforcer.Engine, State: w.enforcer.State, Catalogs: w.enforcer.Catalogs, Now: w.enforcer.Now}).decideFor(c, sql, nil)
			if got.err != nil || cold.err != nil || got.sql != cold.sql {
				t.Fatalf("%s: %q\ntemplate: %q (%v)\ncold:     %q (%v)", k.who, sql, got.sql, got.err, cold.sql, cold.err)
			}
		}
	}
	hits := testutil.ToFloat64(m.rewriteCache[cacheTemplate])
	// Each persona's first statement of a shape is rewritten (its grants
	// differ from the others'); the next three are templates.
	if want := float64(len(cases) * 3); hits != want {
		t.Errorf("%v statements served from templates, want %v", hits, want)
	}
}

// TestTemplatedWritesAreChecked: a write served from a template is checked
// on its own values: alice's insert for her own customer id makes the
// template, the same insert for another customer's id is refused (42501)
// and writes nothing.
func TestTemplatedWritesAreChecked(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	alice := w.assume(t, "alice", nil, nil)
	const insert = "INSERT INTO support_tickets (id, customer_id, subject, body, status) VALUES (%d, %d, 'help', 'please', 'open')"
	if _, err := alice.Exec(ctx, fmt.Sprintf(insert, 201, 1), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("alice's own ticket: %v", err)
	}
	w.enforcer.cache.mu.Lock()
	templates := len(w.enforcer.cache.templates)
	w.enforcer.cache.mu.Unlock()
	if templates == 0 {
		t.Fatal("the insert left no template")
	}
	_, err := alice.Exec(ctx, fmt.Sprintf(insert, 202, 2), pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("a ticket for customer 2: got %v, want 42501", err)
	}
	var n int
	if err := w.owner.QueryRow(ctx, "SELECT count(*) FROM support_tickets WHERE id IN (201, 202)").Scan(&n); err != nil || n != 1 {
		t.Fatalf("tickets 201 and 202: %d rows (%v), want only 201", n, err)
	}
}

// TestTemplateMarkerInjection (red team round 51b, high): a statement that
// spells a template's literal marker in a quoted alias, then the same
// shape with a literal that closes the identifier. Had the first made a
// template, the second's literal would have been pasted into the alias
// unparsed and run as SQL: every customer's ssn, as alice.
func TestTemplateMarkerInjection(t *testing.T) {
	w := startBank(t)
	alice := w.connect(t, "alice")
	const marker = "mandate\x01literal0\x01"
	alias := `"'` + marker + `'"`
	payload := `x", (SELECT string_agg(ssn, chr(44)) FROM public.customers) AS "y`
	for _, lit := range []string{marker, payload, payload} {
		sql := "SELECT '" + lit + "' AS " + alias + " FROM accounts"
		r, err := alice.Query(ctxT(t), sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		n := 0
		for r.Next() {
			vals, err := r.Values()
			if err != nil {
				t.Fatal(err)
			}
			if n++; len(vals) != 1 || vals[0] != lit {
				t.Errorf("%q returned %v, want the one literal", sql, vals)
			}
		}
		r.Close()
		if err := r.Err(); err != nil || n == 0 {
			t.Fatalf("%q: %d rows, %v", sql, n, err)
		}
	}
}
