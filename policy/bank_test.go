package policy

import (
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-proxy/mandate/grant"
)

// The bank world of SPEC §5, as shipped in testdata/bank.

var bankSources = Sources{
	PolicyDir: "../testdata/bank/policies",
	Schema:    "../testdata/bank/schema.cedarschema",
	Entities:  "../testdata/bank/entities.json",
	Masks:     "../testdata/bank/masks.yaml",
}

// bankTables is the catalog of testdata/bank/schema.sql.
var bankTables = map[string]RelationInfo{
	"customers": {Name: "public.customers", Columns: []ColumnInfo{
		{Name: "id", Type: "bigint"}, {Name: "name", Type: "text"}, {Name: "email", Type: "text"}, {Name: "ssn", Type: "text"}, {Name: "phone", Type: "text"}, {Name: "birth_date", Type: "date"}}},
	"accounts": {Name: "public.accounts", Columns: []ColumnInfo{
		{Name: "id", Type: "bigint"}, {Name: "customer_id", Type: "bigint"}, {Name: "iban", Type: "text"}, {Name: "balance", Type: "numeric(14,2)"}, {Name: "opened_at", Type: "timestamptz"}}},
	"transactions": {Name: "public.transactions", Columns: []ColumnInfo{
		{Name: "id", Type: "bigint"}, {Name: "account_id", Type: "bigint"}, {Name: "amount", Type: "numeric(14,2)"}, {Name: "merchant", Type: "text"}, {Name: "category", Type: "text"}, {Name: "booked_at", Type: "timestamptz"}}},
	"support_tickets": {Name: "public.support_tickets", Columns: []ColumnInfo{
		{Name: "id", Type: "bigint"}, {Name: "customer_id", Type: "bigint"}, {Name: "assignee", Type: "text"}, {Name: "subject", Type: "text"}, {Name: "body", Type: "text"}, {Name: "status", Type: "text"}}},
}

var (
	today     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	bobUntil  = time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)
	allTables = []string{"customers", "accounts", "transactions", "support_tickets"}
)

// consents is an in-memory ConsentIndex.
type consents struct {
	mu sync.Mutex
	by map[string][]string
}

func (c *consents) ConsentedSubjects(purpose string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.by[purpose]), nil
}

func (c *consents) withdraw(purpose, subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.by[purpose] = slices.DeleteFunc(c.by[purpose], func(s string) bool { return s == subject })
}

func newConsents() *consents {
	return &consents{by: map[string][]string{
		"analytics": {"erin", "frank", "heidi", "judy", "niaj"},
		"marketing": {"alice"},
	}}
}

func openBank(t testing.TB, src Sources, opts Options) *Engine {
	t.Helper()
	if opts.Consents == nil {
		opts.Consents = newConsents()
	}
	e, err := Open(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func bobDelegation() *Delegation {
	return &Delegation{
		ID:        "d-bob-2025",
		Grantor:   "alice",
		Delegate:  "bob",
		Tables:    []string{"public.accounts", "public.transactions"},
		Actions:   []grant.Action{grant.Select},
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		ExpiresAt: bobUntil,
		RowConstraint: map[string]string{
			"public.transactions": `["tax", "income"].contains(resource.category)`,
		},
	}
}

func assistantAgent() *Agent {
	return &Agent{
		ID:      "assistant",
		Owner:   "alice",
		Tables:  []string{"public.accounts", "public.transactions"},
		Actions: []grant.Action{grant.Select},
		Masked:  []string{"public.customers.ssn", "public.accounts.iban"},
	}
}

func ctxAt(now time.Time) Context {
	return Context{Now: now, AuthMethod: "jwt", ClientAddr: "127.0.0.1"}
}

var (
	aliceScope = Scope{Subject: "alice", Consents: []string{"marketing"}, Context: ctxAt(today)}
	carolScope = Scope{Subject: "carol", Context: ctxAt(today)}
	bobScope   = Scope{Subject: "alice", Actors: []Actor{{"bob", ActorDelegate}}, Delegation: bobDelegation(), Context: ctxAt(today)}
	agentScope = Scope{Subject: "alice", Actors: []Actor{{"assistant", ActorAgent}}, Agent: assistantAgent(), Context: ctxAt(today)}
	samScope   = Scope{Subject: "sam", Context: ctxAt(today)}
	danaScope  = Scope{Subject: "dana", Purpose: "analytics", Context: ctxAt(today)}
)

// want is a relation grant in rendered form: the filter of each allowed
// action (absent: denied), the masks, and a fragment of the reason.
type want struct {
	filters map[grant.Action]string
	masks   map[string]string
	reason  string
}

func sel(f string) map[grant.Action]string { return map[grant.Action]string{grant.Select: f} }

func checkGrant(t *testing.T, r *grant.Relation, w want) {
	t.Helper()
	got := map[grant.Action]string{}
	for _, a := range grant.Actions {
		if r.Can(a) {
			got[a] = grant.Format(r.RowFilter(a))
		}
	}
	if w.filters == nil {
		w.filters = map[grant.Action]string{}
	}
	if !maps.Equal(got, w.filters) {
		t.Errorf("filters of %s:\n got  %v\n want %v\nreason: %s", r.Name, got, w.filters, r.Reason)
	}
	gotMasks := map[string]string{}
	for c, m := range r.Masks {
		gotMasks[c] = m.String()
	}
	if w.masks == nil {
		w.masks = map[string]string{}
	}
	if !maps.Equal(gotMasks, w.masks) {
		t.Errorf("masks of %s:\n got  %v\n want %v", r.Name, gotMasks, w.masks)
	}
	if !strings.Contains(r.Reason, w.reason) {
		t.Errorf("reason of %s = %q, want it to contain %q", r.Name, r.Reason, w.reason)
	}
	if len(got) < len(grant.Actions) && r.Reason == "" {
		t.Errorf("%s denies some actions without a reason", r.Name)
	}
}

func TestBankPersonas(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	denied := func(reason string) want { return want{reason: reason} }
	cases := []struct {
		persona string
		scope   Scope
		table   string
		want    want
	}{
		{"alice", aliceScope, "customers", want{filters: map[grant.Action]string{grant.Select: "id = 1", grant.Update: "id = 1"}, reason: "no policy permits user alice on public.customers"}},
		{"alice", aliceScope, "accounts", want{filters: sel("customer_id = 1")}},
		{"alice", aliceScope, "transactions", want{filters: sel("account_id IN (101, 102)")}},
		{"alice", aliceScope, "support_tickets", want{filters: map[grant.Action]string{grant.Select: "customer_id = 1", grant.Insert: "customer_id = 1"}}},

		{"carol", carolScope, "customers", want{filters: map[grant.Action]string{grant.Select: "id = 2", grant.Update: "id = 2"}}},
		{"carol", carolScope, "accounts", want{filters: sel("customer_id = 2")}},
		{"carol", carolScope, "transactions", want{filters: sel("account_id IN (103)")}},

		{"bob", bobScope, "customers", denied("delegation d-bob-2025 does not cover public.customers")},
		{"bob", bobScope, "accounts", want{filters: sel("customer_id = 1"), reason: "insert, update, delete: delegation d-bob-2025 allows only select"}},
		{"bob", bobScope, "transactions", want{filters: sel("account_id IN (101, 102) AND category IN ('income', 'tax')")}},
		{"bob", bobScope, "support_tickets", denied("does not cover public.support_tickets")},

		{"assistant", agentScope, "customers", denied("agent assistant is not registered for public.customers")},
		{"assistant", agentScope, "accounts", want{filters: sel("customer_id = 1"), masks: map[string]string{"iban": "partial(4)"}}},
		{"assistant", agentScope, "transactions", want{filters: sel("account_id IN (101, 102)")}},
		{"assistant", agentScope, "support_tickets", denied("not registered for public.support_tickets")},

		{"sam", samScope, "customers", want{filters: sel("id IN (2, 4)"), masks: map[string]string{"ssn": "partial(4)", "phone": "partial(4)"}}},
		{"sam", samScope, "accounts", denied("no policy permits user sam on public.accounts")},
		{"sam", samScope, "support_tickets", want{filters: map[grant.Action]string{
			grant.Select: "assignee IS NOT NULL AND assignee = 'sam'",
			grant.Update: "assignee IS NOT NULL AND assignee = 'sam' AND NOT status = 'closed'",
		}}},

		{"dana", danaScope, "transactions", want{filters: sel("account_id IN (104, 105, 107, 109, 111)")}},
		{"dana", danaScope, "accounts", want{filters: sel("customer_id IN (3, 4, 6, 8, 10)"), masks: map[string]string{
			"customer_id": "hash(customer)", "iban": "partial(4)", "balance": "round(1000)"}}},
		{"dana", danaScope, "customers", denied("no policy permits user dana on public.customers")},
		{"dana without purpose", Scope{Subject: "dana", Context: ctxAt(today)}, "transactions", denied("no policy permits user dana")},

		{"stranger", Scope{Subject: "mallet", Context: ctxAt(today)}, "accounts", denied("no policy permits user mallet on public.accounts")},
	}
	for _, c := range cases {
		t.Run(c.persona+"/"+c.table, func(t *testing.T) {
			r, err := e.Grants(c.scope, bankTables[c.table])
			if err != nil {
				t.Fatal(err)
			}
			checkGrant(t, r, c.want)
		})
	}
}

func TestBankPolicyIDs(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	r, err := e.Grants(samScope, bankTables["support_tickets"])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"closed-tickets-are-frozen", "support-handles-assigned-tickets"}
	if !slices.Equal(r.Policies, want) {
		t.Errorf("policies = %v, want %v", r.Policies, want)
	}
	r, _ = e.Grants(samScope, bankTables["accounts"])
	d := Denied(r, grant.Select)
	if d.Code != CodeInsufficientPrivilege || !strings.Contains(d.Msg, "public.accounts") {
		t.Errorf("Denied = %+v", d)
	}
}

func TestDelegationLifecycle(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	tx := bankTables["transactions"]
	revoked := bobDelegation()
	revoked.RevokedAt = today.Add(-time.Minute)
	otherGrantor := bobDelegation()
	otherGrantor.Grantor = "carol"
	purposeBound := bobDelegation()
	purposeBound.Purpose = "tax-filing"
	scope := func(mod func(*Scope)) Scope {
		s := bobScope
		s.Delegation = bobDelegation()
		mod(&s)
		return s
	}
	cases := []struct {
		name  string
		scope Scope
		want  want
	}{
		{"active", scope(func(*Scope) {}), want{filters: sel("account_id IN (101, 102) AND category IN ('income', 'tax')")}},
		{"revoked", scope(func(s *Scope) { s.Delegation = revoked }), want{reason: "delegation d-bob-2025 is revoked, expired or not yet valid"}},
		{"expired", scope(func(s *Scope) { s.Context.Now = bobUntil }), want{reason: "is revoked, expired or not yet valid"}},
		{"not yet valid", scope(func(s *Scope) { s.Context.Now = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC) }), want{reason: "not yet valid"}},
		{"no delegation", scope(func(s *Scope) { s.Delegation = nil }), want{reason: "delegate bob has no delegation from alice"}},
		{"someone else's delegation", scope(func(s *Scope) { s.Delegation = otherGrantor }), want{reason: "granted by carol, not by alice"}},
		{"wrong purpose", scope(func(s *Scope) { s.Delegation = purposeBound }), want{reason: `is for purpose "tax-filing"`}},
		{"right purpose", scope(func(s *Scope) { s.Delegation = purposeBound; s.Purpose = "tax-filing" }), want{filters: sel("account_id IN (101, 102) AND category IN ('income', 'tax')")}},
		{"in-style row constraint", scope(func(s *Scope) {
			s.Delegation.RowConstraint["public.transactions"] = `resource.category in ["tax", "income"]`
		}), want{filters: sel("account_id IN (101, 102) AND category IN ('income', 'tax')")}},
		{"decimal row constraint", scope(func(s *Scope) {
			s.Delegation.RowConstraint["public.transactions"] = `resource.amount.greaterThan(decimal("100.00")) && resource.booked_at >= datetime("2024-01-01")`
		}), want{filters: sel("account_id IN (101, 102) AND amount > '100.0'::numeric AND booked_at >= '2024-01-01T00:00:00Z'::timestamptz")}},
		{"broken row constraint", scope(func(s *Scope) {
			s.Delegation.RowConstraint["public.transactions"] = `true }; permit (principal, action, resource) when { true`
		}), want{reason: "row constraint of delegation d-bob-2025 on public.transactions failed closed"}},
		{"row constraint on unknown column", scope(func(s *Scope) {
			s.Delegation.RowConstraint["public.transactions"] = `resource.kind == "tax"`
		}), want{reason: `public.transactions has no column "kind"`}},
		{"column scope", scope(func(s *Scope) {
			s.Delegation.Columns = []string{"public.transactions.id", "public.transactions.amount", "public.transactions.category"}
		}), want{filters: sel("account_id IN (101, 102) AND category IN ('income', 'tax')"), masks: map[string]string{
			"account_id": "null", "merchant": "null", "booked_at": "null"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := e.Grants(c.scope, tx)
			if err != nil {
				t.Fatal(err)
			}
			checkGrant(t, r, c.want)
		})
	}
}

// The cache must not outlive a delegation: the statement after expiry or
// revocation is denied even though nothing else changed.
func TestGrantSetCacheHonoursClock(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	rels := []RelationInfo{bankTables["transactions"]}
	s := bobScope
	s.Delegation = bobDelegation()
	set, err := e.GrantSet(s, rels, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Lookup("public.transactions").Can(grant.Select) {
		t.Fatal("bob cannot read transactions before expiry")
	}
	s.Context.Now = bobUntil.Add(time.Second)
	set2, err := e.GrantSet(s, rels, 1)
	if err != nil {
		t.Fatal(err)
	}
	if set2.Lookup("public.transactions").Can(grant.Select) {
		t.Fatal("bob still reads transactions after expiry (stale cache)")
	}
	if set.Version == set2.Version {
		t.Error("grant set version did not change with the grants")
	}
	s.Context.Now = today
	set3, _ := e.GrantSet(s, rels, 1)
	if set3.Version != set.Version || set3.Lookup("public.transactions") != set.Lookup("public.transactions") {
		t.Error("warm lookup did not come from the cache")
	}
}

// TestActorChainOrder (red team round 32, F4): a delegation is the
// subject's, so its delegate acts for the subject, first in the chain; a
// chain names each actor once.
func TestActorChainOrder(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	bob, assistant := Actor{"bob", ActorDelegate}, Actor{"assistant", ActorAgent}
	bobsAgent := assistantAgent()
	bobsAgent.Owner = "bob"
	cases := []struct {
		name   string
		actors []Actor
		agent  *Agent
		want   want
	}{
		{"bob for the agent for alice", []Actor{assistant, bob}, assistantAgent(), want{reason: "delegate bob has no delegation from assistant"}},
		{"bob twice", []Actor{bob, bob}, nil, want{reason: "actor bob appears twice in the chain"}},
		{"bob's agent for bob for alice", []Actor{bob, assistant}, bobsAgent, want{filters: sel("account_id IN (101, 102) AND category IN ('income', 'tax')")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := bobScope
			s.Actors, s.Agent = c.actors, c.agent
			r, err := e.Grants(s, bankTables["transactions"])
			if err != nil {
				t.Fatal(err)
			}
			checkGrant(t, r, c.want)
		})
	}
}

func TestAgentScope(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	disabled := assistantAgent()
	disabled.Disabled = today.Add(-time.Hour)
	forCarol := assistantAgent()
	forCarol.Owner = "carol"
	writer := assistantAgent()
	writer.Actions = grant.Actions
	writer.Tables = append(writer.Tables, "public.support_tickets")
	cases := []struct {
		name  string
		agent *Agent
		table string
		want  want
	}{
		{"disabled", disabled, "accounts", want{reason: "agent assistant has no active registration for alice"}},
		{"registered for someone else", forCarol, "accounts", want{reason: "no active registration for alice"}},
		{"missing registration", nil, "accounts", want{reason: "no active registration"}},
		// A registration that allows writes still cannot write: Cedar forbids it.
		{"write registration", writer, "support_tickets", want{reason: "agent assistant is forbidden on public.support_tickets by agents-never-write"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := agentScope
			s.Agent = c.agent
			r, err := e.Grants(s, bankTables[c.table])
			if err != nil {
				t.Fatal(err)
			}
			if c.name == "write registration" {
				c.want.filters = sel("customer_id = 1")
			}
			checkGrant(t, r, c.want)
		})
	}
}

func TestConsentWithdrawal(t *testing.T) {
	idx := newConsents()
	e := openBank(t, bankSources, Options{Consents: idx})
	rels := []RelationInfo{bankTables["transactions"], bankTables["accounts"]}
	set, err := e.GrantSet(danaScope, rels, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := grant.Format(set.Lookup("public.transactions").RowFilter(grant.Select)); got != "account_id IN (104, 105, 107, 109, 111)" {
		t.Fatalf("before withdrawal: %s", got)
	}
	idx.withdraw("analytics", "frank") // customer 4, account 105
	set, err = e.GrantSet(danaScope, rels, 8)
	if err != nil {
		t.Fatal(err)
	}
	if got := grant.Format(set.Lookup("public.transactions").RowFilter(grant.Select)); got != "account_id IN (104, 107, 109, 111)" {
		t.Errorf("transactions after withdrawal: %s", got)
	}
	if got := grant.Format(set.Lookup("public.accounts").RowFilter(grant.Select)); got != "customer_id IN (3, 6, 8, 10)" {
		t.Errorf("accounts after withdrawal: %s", got)
	}
	for _, s := range []string{"erin", "heidi", "judy", "niaj"} {
		idx.withdraw("analytics", s)
	}
	set, _ = e.GrantSet(danaScope, rels, 9)
	if r := set.Lookup("public.transactions"); r.Can(grant.Select) {
		t.Errorf("no consent left, yet dana reads %s", grant.Format(r.RowFilter(grant.Select)))
	}
}

type failingConsents struct{}

func (failingConsents) ConsentedSubjects(string) ([]string, error) {
	return nil, errStale
}

var errStale = &Error{Code: CodeCannotConnectNow, Msg: "policy store is stale"}

func TestConsentLookupFailureIsAnError(t *testing.T) {
	e := openBank(t, bankSources, Options{Consents: failingConsents{}})
	_, err := e.GrantSet(danaScope, []RelationInfo{bankTables["transactions"]}, 1)
	if err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("err = %v, want the store's stale error", err)
	}
	var pe *Error
	if !asError(err, &pe) || pe.Code != CodeCannotConnectNow {
		t.Errorf("err = %#v, want SQLSTATE %s", err, CodeCannotConnectNow)
	}
}

func asError(err error, target **Error) bool {
	pe, ok := err.(*Error)
	*target = pe
	return ok
}

func TestUnprotectedRelations(t *testing.T) {
	audit := RelationInfo{Name: "public.audit_log", Columns: []ColumnInfo{{Name: "id", Type: "bigint"}}}
	r, err := openBank(t, bankSources, Options{}).Grants(aliceScope, audit)
	if err != nil {
		t.Fatal(err)
	}
	checkGrant(t, r, want{reason: "public.audit_log is not a protected table"})

	open := openBank(t, bankSources, Options{AllowUnprotected: true})
	r, _ = open.Grants(aliceScope, audit)
	checkGrant(t, r, want{filters: map[grant.Action]string{grant.Select: "true", grant.Insert: "true", grant.Update: "true", grant.Delete: "true"}})
	// Registered scopes still apply to unprotected relations.
	r, _ = open.Grants(bobScope, audit)
	checkGrant(t, r, want{reason: "does not cover public.audit_log"})
}

// SPEC §2 rule 1, as a property: whatever the agent's registration and the
// request context, the assistant never gets more than alice in the same
// context: no action she lacks, every row filter of hers, every mask of hers.
func TestAgentNeverExceedsSubject(t *testing.T) {
	e := openBank(t, bankSources, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	subset := func(all []string) []string {
		var out []string
		for _, s := range all {
			if rng.IntN(2) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	tables := []string{"public.customers", "public.accounts", "public.transactions", "public.support_tickets", "public.audit_log"}
	columns := []string{"public.customers.ssn", "public.accounts.iban", "public.accounts.balance", "public.transactions.merchant"}
	for i := range 300 {
		ag := &Agent{ID: "assistant", Owner: []string{"alice", "*"}[rng.IntN(2)], Tables: subset(tables), Masked: subset(columns)}
		for _, a := range grant.Actions {
			if rng.IntN(2) == 0 {
				ag.Actions = append(ag.Actions, a)
			}
		}
		base := Scope{
			Subject:  "alice",
			Consents: subset([]string{"analytics", "marketing"}),
			Purpose:  []string{"", "analytics", "support"}[rng.IntN(3)],
			Context:  ctxAt(today),
		}
		base.Context.Claims = map[string]any{"risk": []string{"low", "high"}[rng.IntN(2)]}
		asAgent := base
		asAgent.Actors = []Actor{{"assistant", ActorAgent}}
		asAgent.Agent = ag
		for _, name := range allTables {
			rel := bankTables[name]
			alice, err := e.Grants(base, rel)
			if err != nil {
				t.Fatal(err)
			}
			agent, err := e.Grants(asAgent, rel)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range grant.Actions {
				if !agent.Can(a) {
					continue
				}
				if !alice.Can(a) {
					t.Fatalf("case %d: agent may %s %s, alice may not (agent %+v)", i, a, rel.Name, ag)
				}
				have := conjuncts(agent.RowFilter(a))
				for _, c := range conjuncts(alice.RowFilter(a)) {
					if c != "true" && !slices.Contains(have, c) {
						t.Fatalf("case %d: agent's %s filter on %s lacks alice's %q: %s", i, a, rel.Name, c, grant.Format(agent.RowFilter(a)))
					}
				}
			}
			if agent.Can(grant.Select) {
				for col := range alice.Masks {
					if _, ok := agent.Masks[col]; !ok {
						t.Fatalf("case %d: %s.%s is masked for alice but raw for the agent", i, rel.Name, col)
					}
				}
			}
		}
	}
}

func conjuncts(e grant.Expr) []string {
	if a, ok := e.(grant.And); ok {
		out := make([]string, len(a.Terms))
		for i, t := range a.Terms {
			out[i] = grant.Format(t)
		}
		return out
	}
	return []string{grant.Format(e)}
}
