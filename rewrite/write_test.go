package rewrite

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
)

// The audit record says what a write may reach and what every new row must
// pass, per action.
func TestWriteRelationUses(t *testing.T) {
	cat := testCatalog(t)
	res, err := RewriteSQL(
		"INSERT INTO accounts (id, customer_id, balance) VALUES (1, 1, 5) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + excluded.balance",
		cat, Session{}, &setSource{set: scenarios()["alice"]}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	got := res.Statements[0].Relations
	want := []RelationUse{
		{Name: "public.accounts", Action: grant.Insert, Protected: true,
			Checks: []string{"customer_id = 1"}, Policies: []string{"customer-own-accounts"}},
		{Name: "public.accounts", Action: grant.Update, Protected: true,
			Filters:  []string{"customer_id = 1 AND balance >= '0'::numeric"},
			Checks:   []string{"customer_id = 1 AND balance >= '0'::numeric"},
			Policies: []string{"customer-own-accounts"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("relations\n got %+v\nwant %+v", got, want)
	}
	if res.Statements[0].Kind != KindInsert || !res.Statements[0].Rewritten {
		t.Fatalf("statement info %+v", res.Statements[0])
	}
}

func TestWriteDoesNotMutateInput(t *testing.T) {
	cat := testCatalog(t)
	stmts, err := Parse("UPDATE accounts SET (customer_id, iban) = (2, 'x') WHERE leak(iban) RETURNING *; " +
		"INSERT INTO accounts VALUES (1, 1, DEFAULT)")
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	for _, s := range stmts.tree.Stmts {
		d, _ := deparse(s.Stmt)
		before = append(before, d)
	}
	for range 2 {
		if _, err := Rewrite(stmts, cat, Session{}, &setSource{set: scenarios()["alice"]}, testOptions()); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range stmts.tree.Stmts {
		if after, _ := deparse(s.Stmt); after != before[i] {
			t.Fatalf("input tree mutated:\n%s\n%s", before[i], after)
		}
	}
}

// The golden invariant must notice a write that lost its guard.
func TestInvariantCatchesUnguardedWrites(t *testing.T) {
	cat := testCatalog(t)
	set := scenarios()["alice"]
	for _, sql := range []string{
		"DELETE FROM public.accounts WHERE id = 1",
		"DELETE FROM public.accounts WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1",
		"UPDATE public.accounts SET balance = -1 WHERE accounts.customer_id OPERATOR(pg_catalog.=) 1 AND accounts.balance OPERATOR(pg_catalog.>=) '0'::numeric",
		"INSERT INTO public.accounts (id, customer_id) VALUES (1, 2)",
		"INSERT INTO public.accounts (id, customer_id) SELECT _mandate_new.id, _mandate_new.customer_id FROM (SELECT 1, 2) _mandate_new(id, customer_id) WHERE mandate.deny_unless(true, 'public.accounts')",
		"COPY public.accounts FROM STDIN",
		"UPDATE public.support_tickets SET status = 'x' WHERE true",
	} {
		if err := checkWrapped(sql, cat, Session{}, testOptions(), set); err == nil {
			t.Errorf("invariant accepted %s", sql)
		}
	}
}

// Policy values reach write checks as quoted constants, never as SQL.
func TestWriteCheckLiteralsAreNotInjectable(t *testing.T) {
	cat := testCatalog(t)
	evil := "x'); DROP TABLE accounts; --"
	r := allow("public.accounts", eq("iban", evil), nil)
	r.Allowed[grant.Insert] = true
	r.Filter[grant.Insert] = eq("iban", evil)
	res, err := RewriteSQL("INSERT INTO accounts (id, iban) VALUES (1, 'a')", cat, Session{},
		&setSource{set: &grant.Set{Relations: map[string]*grant.Relation{"public.accounts": r}}}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if stmts, err := Parse(res.SQL); err != nil || stmts.Len() != 1 || !strings.Contains(res.SQL, `'x''); DROP TABLE accounts; --'`) {
		t.Fatalf("check not built as a quoted constant: %s (%v)", res.SQL, err)
	}
}

// A write whose action the grant does not allow is denied like a read, and
// a missing filter for an allowed action fails closed (every row refused).
func TestWriteFailsClosed(t *testing.T) {
	cat := testCatalog(t)
	r := allow("public.accounts", grant.True, nil)
	r.Allowed[grant.Update] = true // no Filter[Update]: RowFilter gives False
	set := &grant.Set{Relations: map[string]*grant.Relation{"public.accounts": r}}
	res, err := RewriteSQL("UPDATE accounts SET customer_id = 2", cat, Session{}, &setSource{set: set}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.SQL, "WHERE false") {
		t.Fatalf("missing update filter did not fail closed: %s", res.SQL)
	}
	_, err = RewriteSQL("DELETE FROM accounts", cat, Session{}, &setSource{set: set}, testOptions())
	var re *Error
	if !errors.As(err, &re) || re.Code != CodeDenied || !strings.Contains(re.Msg, "no policy permits delete") {
		t.Fatalf("delete without permission: %v", err)
	}
}
