package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/policy"
)

// bobForAlice is the demo world's accountant delegation (SPEC §5).
func bobForAlice() policy.Delegation {
	return policy.Delegation{
		Grantor:       "alice",
		Delegate:      "bob",
		Tables:        []string{"public.accounts", "public.transactions"},
		Actions:       []grant.Action{grant.Select},
		RowConstraint: map[string]string{"public.transactions": `resource.category in ["tax", "income"]`},
		Purpose:       "accounting",
		ExpiresAt:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestDelegationRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, dsn := migrated(t)
	s := New(connect(t, dsn))

	want := bobForAlice()
	id, err := s.GrantDelegation(ctx, want)
	if err != nil {
		t.Fatalf("GrantDelegation: %v", err)
	}
	other, err := s.GrantDelegation(ctx, policy.Delegation{
		Grantor: "carol", Delegate: "bob", Tables: []string{"public.accounts"},
		Actions: []grant.Action{grant.Select, grant.Update}, Columns: []string{"public.accounts.balance"},
	})
	if err != nil {
		t.Fatalf("GrantDelegation: %v", err)
	}

	got, err := s.ListDelegations(ctx, DelegationFilter{Grantor: "alice"})
	if err != nil || len(got) != 1 {
		t.Fatalf("ListDelegations(alice) = %v, %v; want one", got, err)
	}
	d := got[0]
	if d.ID != id || d.Grantor != "alice" || d.Delegate != "bob" || d.Purpose != "accounting" ||
		!slices.Equal(d.Tables, want.Tables) || !slices.Equal(d.Actions, want.Actions) ||
		len(d.Columns) != 0 || d.RowConstraint["public.transactions"] != want.RowConstraint["public.transactions"] ||
		!d.ExpiresAt.Equal(want.ExpiresAt) || !d.NotBefore.IsZero() || !d.RevokedAt.IsZero() || d.CreatedAt.IsZero() {
		t.Fatalf("round trip changed the delegation:\n got %+v\nwant %+v", d, want)
	}

	all, _ := s.ListDelegations(ctx, DelegationFilter{Delegate: "bob"})
	if len(all) != 2 || all[0].ID != id || all[1].ID != other {
		t.Fatalf("ListDelegations(delegate bob) = %v; want both, oldest first", all)
	}

	revokedAt, err := s.RevokeDelegation(ctx, id)
	if err != nil || revokedAt.IsZero() {
		t.Fatalf("RevokeDelegation = %v, %v", revokedAt, err)
	}
	got, _ = s.ListDelegations(ctx, DelegationFilter{Grantor: "alice"})
	if !got[0].RevokedAt.Equal(revokedAt) {
		t.Fatalf("listed RevokedAt = %v, want %v", got[0].RevokedAt, revokedAt)
	}
	active, _ := s.ListDelegations(ctx, DelegationFilter{ActiveAt: time.Now()})
	if len(active) != 1 || active[0].ID != other {
		t.Fatalf("ListDelegations(active now) = %v; want only %s", active, other)
	}
	if active, _ := s.ListDelegations(ctx, DelegationFilter{ActiveAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), Grantor: "alice"}); len(active) != 0 {
		t.Fatalf("revoked delegation listed as active: %v", active)
	}

	if _, err := s.RevokeDelegation(ctx, id); !errors.Is(err, ErrAlreadyRevoked) {
		t.Fatalf("second revoke: %v, want ErrAlreadyRevoked", err)
	}
	for _, unknown := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		if _, err := s.RevokeDelegation(ctx, unknown); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke %q: %v, want ErrNotFound", unknown, err)
		}
	}
}

func TestConsentRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, dsn := migrated(t)
	conn := connect(t, dsn)
	s := New(conn)

	for _, c := range []struct {
		subject, purpose string
		granted          bool
	}{
		{"alice", "analytics", true},
		{"carol", "analytics", true},
		{"alice", "marketing", true},
		{"alice", "marketing", true}, // repeated answer: no change
		{"carol", "analytics", false},
	} {
		if err := s.SetConsent(ctx, c.subject, c.purpose, c.granted); err != nil {
			t.Fatalf("SetConsent%v: %v", c, err)
		}
	}
	got, err := s.ListConsents(ctx, ConsentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, c := range got {
		if c.At.IsZero() {
			t.Errorf("consent %+v has no time", c)
		}
		summary = append(summary, c.Subject+"/"+c.Purpose+"="+map[bool]string{true: "yes", false: "no"}[c.Granted])
	}
	want := []string{"alice/analytics=yes", "alice/marketing=yes", "carol/analytics=no"}
	if !slices.Equal(summary, want) {
		t.Fatalf("ListConsents = %v, want %v", summary, want)
	}
	if got, _ := s.ListConsents(ctx, ConsentFilter{Purpose: "analytics", Subject: "carol"}); len(got) != 1 || got[0].Granted {
		t.Fatalf("ListConsents(carol, analytics) = %+v", got)
	}
	var history int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM mandate.consent_history").Scan(&history); err != nil || history != 4 {
		t.Fatalf("consent_history has %d rows (%v), want 4 (the repeat is not a change)", history, err)
	}
}

func TestAgentRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, dsn := migrated(t)
	s := New(connect(t, dsn))

	assistant := policy.Agent{
		ID: "assistant", Owner: "alice",
		Tables:  []string{"public.accounts", "public.transactions"},
		Actions: []grant.Action{grant.Select},
		Masked:  []string{"public.customers.ssn", "public.accounts.iban"},
	}
	if err := s.RegisterAgent(ctx, assistant); err != nil {
		t.Fatalf("RegisterAgent: %v", err)
	}
	if err := s.RegisterAgent(ctx, policy.Agent{ID: "helper", Owner: "*", Tables: []string{"public.accounts"}, Actions: []grant.Action{grant.Select}}); err != nil {
		t.Fatalf("RegisterAgent: %v", err)
	}
	if err := s.RegisterAgent(ctx, assistant); !errors.Is(err, ErrAlreadyRegistered) {
		t.Fatalf("re-register: %v, want ErrAlreadyRegistered", err)
	}
	disabledAt, err := s.DisableAgent(ctx, "assistant")
	if err != nil {
		t.Fatalf("DisableAgent: %v", err)
	}
	if _, err := s.DisableAgent(ctx, "assistant"); !errors.Is(err, ErrAlreadyDisabled) {
		t.Fatalf("second disable: %v, want ErrAlreadyDisabled", err)
	}
	if _, err := s.DisableAgent(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("disable unknown: %v, want ErrNotFound", err)
	}
	got, err := s.ListAgents(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("ListAgents = %v, %v", got, err)
	}
	a := got[0]
	if a.ID != "assistant" || a.Owner != "alice" || !slices.Equal(a.Tables, assistant.Tables) ||
		!slices.Equal(a.Actions, assistant.Actions) || !slices.Equal(a.Masked, assistant.Masked) || !a.Disabled.Equal(disabledAt) {
		t.Fatalf("round trip changed the agent:\n got %+v\nwant %+v disabled at %v", a, assistant, disabledAt)
	}
	if got[1].ID != "helper" || got[1].Owner != "*" || !got[1].Disabled.IsZero() || len(got[1].Masked) != 0 {
		t.Fatalf("second agent = %+v", got[1])
	}
}

// Invalid state is refused by the schema itself, so it holds for the CLI
// and for hand-written SQL alike, and the store names the broken rule.
func TestConstraintViolations(t *testing.T) {
	ctx := context.Background()
	_, dsn := migrated(t)
	conn := connect(t, dsn)
	s := New(conn)

	tweak := func(f func(*policy.Delegation)) policy.Delegation {
		d := bobForAlice()
		f(&d)
		return d
	}
	for _, tc := range []struct {
		name string
		d    policy.Delegation
		want string
	}{
		{"self", tweak(func(d *policy.Delegation) { d.Delegate = "alice" }), "cannot delegate to itself"},
		{"no grantor", tweak(func(d *policy.Delegation) { d.Grantor = "" }), "needs a grantor and a delegate"},
		{"no tables", tweak(func(d *policy.Delegation) { d.Tables = nil; d.RowConstraint = nil }), "at least one table"},
		{"bad action", tweak(func(d *policy.Delegation) { d.Actions = []grant.Action{"drop"} }), "select, insert, update, delete"},
		{"no actions", tweak(func(d *policy.Delegation) { d.Actions = nil }), "select, insert, update, delete"},
		{"window", tweak(func(d *policy.Delegation) { d.NotBefore = d.ExpiresAt.Add(time.Hour) }), "expire after it starts"},
		{"constraint on other table", tweak(func(d *policy.Delegation) {
			d.RowConstraint = map[string]string{"public.customers": "true"}
		}), "keyed by one of the delegated tables"},
		{"empty column", tweak(func(d *policy.Delegation) { d.Columns = []string{""} }), "columns must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.GrantDelegation(ctx, tc.d)
			var se *Error
			if !errors.As(err, &se) || se.Code != "23514" || !strings.Contains(se.Message, tc.want) {
				t.Fatalf("GrantDelegation = %v; want *Error 23514 mentioning %q", err, tc.want)
			}
		})
	}

	t.Run("agent action", func(t *testing.T) {
		err := s.RegisterAgent(ctx, policy.Agent{ID: "x", Owner: "*", Tables: []string{"t"}, Actions: []grant.Action{"SELECT"}})
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(se.Message, "agent actions must be") {
			t.Fatalf("RegisterAgent = %v", err)
		}
	})
	t.Run("consent without purpose", func(t *testing.T) {
		var se *Error
		if err := s.SetConsent(ctx, "alice", "", true); !errors.As(err, &se) || !strings.Contains(se.Message, "needs a subject and a purpose") {
			t.Fatalf("SetConsent = %v", err)
		}
	})
	t.Run("row constraint not a string (raw SQL)", func(t *testing.T) {
		_, err := conn.Exec(ctx, `INSERT INTO mandate.delegations (grantor, delegate, tables, actions, row_constraint)
			VALUES ('alice', 'bob', '{t}', '{select}', '{"t": 1}')`)
		assertPgError(t, err, "23514", "delegations_row_constraint_valid")
	})

	// A grant is immutable except for its end, which is set once.
	id, err := s.GrantDelegation(ctx, bobForAlice())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("rescope by hand", func(t *testing.T) {
		_, err := conn.Exec(ctx, `UPDATE mandate.delegations SET actions = '{select,delete}' WHERE id = $1`, id)
		assertPgError(t, err, "55000", "cannot be changed, only ended")
	})
	if _, err := s.RevokeDelegation(ctx, id); err != nil {
		t.Fatal(err)
	}
	t.Run("unrevoke by hand", func(t *testing.T) {
		_, err := conn.Exec(ctx, `UPDATE mandate.delegations SET revoked_at = NULL WHERE id = $1`, id)
		assertPgError(t, err, "55000", "has already ended")
	})
}

func assertPgError(t *testing.T, err error, code, contains string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code || !strings.Contains(pgErr.Message+pgErr.ConstraintName, contains) {
		t.Fatalf("error = %v; want SQLSTATE %s mentioning %q", err, code, contains)
	}
}

// Notifications carry the documented payload and are delivered on commit
// only: a rolled-back change is never announced.
func TestNotifyOnCommitOnly(t *testing.T) {
	ctx := context.Background()
	_, dsn := migrated(t)
	listener := connect(t, dsn)
	if _, err := listener.Exec(ctx, "LISTEN "+Channel); err != nil {
		t.Fatal(err)
	}
	writer := connect(t, dsn)

	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(tx).GrantDelegation(ctx, bobForAlice()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	revokedAt, committed := grantAndRevoke(t, New(writer))

	var got []payload
	for len(got) < 2 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d notifications: %v", len(got), err)
		}
		var p payload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			t.Fatalf("payload %q: %v", n.Payload, err)
		}
		got = append(got, p)
	}
	grantN, revokeN := got[0], got[1]
	if grantN.Kind != "delegation" || grantN.Op != "insert" || grantN.ID != committed || grantN.Subject != "alice" {
		t.Fatalf("first notification = %+v; want the committed grant %s (the rolled-back one must not be announced)", grantN, committed)
	}
	if revokeN.Op != "update" || revokeN.ID != committed || revokeN.Generation <= grantN.Generation {
		t.Fatalf("second notification = %+v; want the revocation with a later generation than %d", revokeN, grantN.Generation)
	}
	if revokeN.At.Before(before.Add(-time.Second)) || revokeN.At.Sub(revokedAt).Abs() > time.Second {
		t.Fatalf("notification time %v is not the change time %v", revokeN.At, revokedAt)
	}
}

func grantAndRevoke(t *testing.T, s *Store) (time.Time, string) {
	t.Helper()
	ctx := context.Background()
	id, err := s.GrantDelegation(ctx, bobForAlice())
	if err != nil {
		t.Fatal(err)
	}
	at, err := s.RevokeDelegation(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return at, id
}

var _ DB = (*pgx.Conn)(nil)
var _ DB = (pgx.Tx)(nil)
