package rewrite

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
)

func TestSearchPath(t *testing.T) {
	tests := []struct {
		name string
		sess Session
		want []string
	}{
		{"default", Session{User: "alice"}, []string{"pg_catalog", "alice", "public"}},
		{"temp first", Session{TempSchema: "pg_temp_3"}, []string{"pg_temp_3", "pg_catalog", "public"}},
		{"explicit catalog and temp", Session{SearchPath: []string{"public", "pg_catalog", "pg_temp"}, TempSchema: "pg_temp_3"},
			[]string{"public", "pg_catalog", "pg_temp_3"}},
		{"no temp schema yet", Session{SearchPath: []string{"pg_temp", "app"}}, []string{"pg_catalog", "app"}},
	}
	for _, tt := range tests {
		if got := tt.sess.relationPath(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: relationPath = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := (Session{TempSchema: "pg_temp_3"}).functionPath(); !reflect.DeepEqual(got, []string{"pg_catalog", "public"}) {
		t.Errorf("functionPath must skip pg_temp, got %v", got)
	}
}

func TestResolveRelation(t *testing.T) {
	cat := testCatalog(t)
	tests := []struct {
		sess         Session
		schema, name string
		want         string
	}{
		{Session{}, "", "accounts", "public.accounts"},
		{Session{TempSchema: "pg_temp_3"}, "", "accounts", "pg_temp_3.accounts"},
		{Session{TempSchema: "pg_temp_3", SearchPath: []string{"public", "pg_temp"}}, "", "accounts", "public.accounts"},
		{Session{TempSchema: "pg_temp_3"}, "pg_temp", "accounts", "pg_temp_3.accounts"},
		{Session{}, "pg_temp", "accounts", ""},
		{Session{SearchPath: []string{"Sales"}}, "", "Orders", "Sales.Orders"},
		{Session{}, "", "Orders", ""},
		{Session{}, "", "pg_class", "pg_catalog.pg_class"},
	}
	for _, tt := range tests {
		got := ""
		if tbl := cat.lookupRelation(tt.sess, tt.schema, tt.name); tbl != nil {
			got = tbl.QualifiedName()
		}
		if got != tt.want {
			t.Errorf("%+v %s.%s → %q, want %q", tt.sess, tt.schema, tt.name, got, tt.want)
		}
	}
}

func TestGrantsAskedOnceSorted(t *testing.T) {
	cat := testCatalog(t)
	src := &setSource{set: scenarios()["alice"]}
	stmts, err := Parse("SELECT * FROM transactions; SELECT * FROM accounts a JOIN customers c ON c.id = a.customer_id JOIN accounts b ON true; SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Rewrite(stmts, cat, Session{}, src, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"public.accounts", "public.customers", "public.transactions"}}
	if !reflect.DeepEqual(src.asked, want) {
		t.Fatalf("asked %v, want %v", src.asked, want)
	}
	if res.GrantsVersion != 7 || len(res.Statements) != 3 || res.Statements[2].Rewritten || res.Statements[2].SQL != "SELECT 1" {
		t.Fatalf("unexpected result %+v", res)
	}
	rel := res.Statements[1].Relations[0]
	if rel.Name != "public.accounts" || len(rel.Filters) != 2 || rel.Policies[0] != "customer-own-accounts" {
		t.Fatalf("accounts use = %+v", rel)
	}
	none := &setSource{set: scenarios()["alice"]}
	if _, err := RewriteSQL("SELECT * FROM countries", cat, Session{}, none, testOptions()); err != nil || len(none.asked) != 0 {
		t.Fatalf("grants asked for an unprotected statement: %v %v", none.asked, err)
	}
}

func TestRewriteDoesNotMutateInput(t *testing.T) {
	cat := testCatalog(t)
	stmts, err := Parse("SELECT public.accounts.id FROM public.accounts WHERE leak(iban)")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := deparse(stmts.tree.Stmts[0].Stmt)
	for range 2 {
		res, err := Rewrite(stmts, cat, Session{}, &setSource{set: scenarios()["alice"]}, testOptions())
		if err != nil || !res.Statements[0].Fenced {
			t.Fatalf("rewrite: %v %+v", err, res)
		}
	}
	if after, _ := deparse(stmts.tree.Stmts[0].Stmt); after != before {
		t.Fatalf("input tree mutated:\n%s\n%s", before, after)
	}
}

func TestDenialNamesTableAndPolicies(t *testing.T) {
	cat := testCatalog(t)
	_, err := RewriteSQL("SELECT * FROM support_tickets", cat, Session{}, &setSource{set: scenarios()["alice"]}, testOptions())
	var re *Error
	if !errors.As(err, &re) || re.Code != CodeDenied || !strings.Contains(re.Msg, "public.support_tickets") ||
		!strings.Contains(re.Msg, "customers cannot read support tickets") || re.Detail != "policies: support-staff-only" {
		t.Fatalf("got %#v", err)
	}
	// A relation missing from the set is denied, never passed through.
	_, err = RewriteSQL("SELECT * FROM accounts", cat, Session{}, &setSource{set: &grant.Set{}}, testOptions())
	if !errors.As(err, &re) || re.Code != CodeDenied {
		t.Fatalf("missing grant: %v", err)
	}
}

func TestGrantSourceErrorWrapped(t *testing.T) {
	cat := testCatalog(t)
	boom := errors.New("store down")
	_, err := RewriteSQL("SELECT * FROM accounts", cat, Session{}, GrantFunc(func([]string) (*grant.Set, error) { return nil, boom }), nil)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestFilterLiteralsAreNotInjectable(t *testing.T) {
	cat := testCatalog(t)
	evil := "x'); DROP TABLE accounts; --"
	set := &grant.Set{Relations: map[string]*grant.Relation{
		"public.accounts": allow("public.accounts", eq("iban", evil), nil),
	}}
	res, err := RewriteSQL("SELECT id FROM accounts", cat, Session{}, &setSource{set: set}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := Parse(res.SQL)
	if err != nil || stmts.Len() != 1 {
		t.Fatalf("output is not one statement: %q %v", res.SQL, err)
	}
	if !strings.Contains(res.SQL, `'x''); DROP TABLE accounts; --'`) {
		t.Fatalf("literal not quoted: %s", res.SQL)
	}
	bad := &grant.Set{Relations: map[string]*grant.Relation{
		"public.accounts": allow("public.accounts", grant.Compare{Op: grant.Eq, Left: col("iban"), Right: grant.Literal{V: "1", Type: "int); DROP TABLE x; --"}}, nil),
	}}
	if _, err := RewriteSQL("SELECT id FROM accounts", cat, Session{}, &setSource{set: bad}, testOptions()); err == nil {
		t.Fatal("unknown literal type accepted")
	}
}

func TestMaskFallbacks(t *testing.T) {
	cat := testCatalog(t)
	set := &grant.Set{Relations: map[string]*grant.Relation{
		"public.accounts": allow("public.accounts", grant.True, map[string]grant.Mask{
			"id":      {Kind: grant.MaskPartial, Keep: 2},
			"balance": {Kind: grant.MaskRound, Step: 0},
			"iban":    {Kind: grant.MaskHash},
		}),
	}}
	res, err := RewriteSQL("SELECT * FROM accounts", cat, Session{}, &setSource{set: set}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	masks := res.Statements[0].Relations[0].Masks
	if len(masks) != 3 {
		t.Fatalf("masks %+v", masks)
	}
	for _, m := range masks {
		if m.Note == "" {
			t.Errorf("%s: fallback without a note", m.Column)
		}
	}
	if !strings.Contains(res.SQL, "NULL::int AS id") && !strings.Contains(res.SQL, "NULL::integer AS id") {
		t.Errorf("partial on integer must become NULL of the type: %s", res.SQL)
	}
}

// AlwaysFence fences a statement the leakproofness analysis would leave
// inlined, reads and writes alike, and leaves unprotected statements unfenced.
func TestAlwaysFence(t *testing.T) {
	cat := testCatalog(t)
	for _, tt := range []struct {
		sql, fence string // fence: what the always-fenced SQL must contain
	}{
		{"SELECT id FROM accounts WHERE id = 1", " OFFSET 0"},
		{"UPDATE accounts SET balance = 1 WHERE id = 1", "CASE WHEN"},
	} {
		auto, err := RewriteSQL(tt.sql, cat, Session{}, &setSource{set: scenarios()["alice"]}, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		o := testOptions()
		o.AlwaysFence = true
		always, err := RewriteSQL(tt.sql, cat, Session{}, &setSource{set: scenarios()["alice"]}, o)
		if err != nil {
			t.Fatal(err)
		}
		a, f := auto.Statements[0], always.Statements[0]
		if a.Fenced || strings.Contains(a.SQL, tt.fence) {
			t.Errorf("%s: the default must not fence: %s", tt.sql, a.SQL)
		}
		if !strings.Contains(f.SQL, tt.fence) {
			t.Errorf("%s: AlwaysFence must fence (%q): %s", tt.sql, tt.fence, f.SQL)
		}
		if tt.fence == " OFFSET 0" && !f.Fenced {
			t.Errorf("%s: Fenced not reported", tt.sql)
		}
	}
	o := testOptions()
	o.AlwaysFence = true
	res, err := RewriteSQL("SELECT * FROM countries WHERE lower(name) = 'x'", cat, Session{}, &setSource{set: scenarios()["alice"]}, o)
	if err != nil || res.Statements[0].Fenced || strings.Contains(res.Statements[0].SQL, "OFFSET") {
		t.Fatalf("an unprotected statement must not be fenced: %v %+v", err, res.Statements[0])
	}
}
