package rewrite

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// testCatalog is the demo bank (SPEC §5) plus the odd shapes the tests need.
func testCatalog(t testing.TB) *Catalog {
	t.Helper()
	cat, err := NewCatalogBuilder().
		Table("public.customers", "id integer", "name text", "email character varying(200)", "ssn text", "phone text", "birth_date date").
		Table("public.accounts", "id integer", "customer_id integer", "iban text", "balance numeric(12,2)", "opened_at timestamp with time zone").
		Table("public.transactions", "id bigint", "account_id integer", "amount numeric(12,2)", "merchant text", "category text", "booked_at timestamp with time zone").
		Table("public.support_tickets", "id integer", "customer_id integer", "assignee text", "subject text", "body text", "status text").
		Table("public.countries", "code character(2)", "name text").
		Table("public.audit_log", "id bigint", "note text").
		View("public.account_summary", []string{"public.accounts"}, "customer_id integer", "total numeric").
		View("public.country_names", []string{"public.countries"}, "name text").
		Table("Sales.Orders", `"Order Id" integer`, `"Customer" text`, "amount numeric").
		Table("pg_temp_3.accounts", "id integer", "note text").
		Table("mandate.mask_keys", "name text", "key bytea").
		View("public.pg_stat_statements", nil, "query text", "calls bigint").
		Function(&Function{Schema: "public", Name: "leak", NArgs: 1, Volatility: Volatile, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "safe_fn", NArgs: 1, Leakproof: true, Volatility: Immutable, Kind: KindFunction}).
		Function(&Function{Schema: "mandate", Name: "mask_hash", NArgs: 2, Volatility: Stable, Kind: KindFunction}).
		// User-defined operators: one with a name no built-in has (its
		// function could read any table), one shadowing int4 + when public
		// comes before pg_catalog, one sharing ~ with built-ins on its own type.
		Operator(&Operator{Schema: "public", Name: "<?>", Left: "text", Right: "text"}).
		Operator(&Operator{Schema: "public", Name: "+", Left: "int4", Right: "int4"}).
		Operator(&Operator{Schema: "public", Name: "~", Left: "public.phrase", Right: "text"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// testOptions leaves countries and the audit log unprotected and allows two
// user functions, one leaky and one leakproof.
func testOptions() *Options {
	fns := DefaultFunctions()
	fns["public.leak"] = true
	fns["public.safe_fn"] = true
	return &Options{
		Protected: func(name string) bool {
			schema, rel, _ := strings.Cut(name, ".")
			if isSystemSchema(schema) || name == "public.countries" || name == "public.audit_log" || name == "public.country_names" || name == "public.account_summary" {
				return false
			}
			return rel != ""
		},
		Functions: fns,
		Channels:  []string{"jobs", "app_*", "ch", "x"},
	}
}

func col(name string) grant.Column { return grant.Column{Name: name} }

func lit(v any) grant.Literal { return grant.Literal{V: v} }

func eq(c string, v any) grant.Expr { return grant.Compare{Op: grant.Eq, Left: col(c), Right: lit(v)} }

func allow(name string, filter grant.Expr, masks map[string]grant.Mask, policies ...string) *grant.Relation {
	return &grant.Relation{
		Name:     name,
		Allowed:  map[grant.Action]bool{grant.Select: true},
		Filter:   map[grant.Action]grant.Expr{grant.Select: filter},
		Masks:    masks,
		Policies: policies,
	}
}

func deny(name, reason string, policies ...string) *grant.Relation {
	return &grant.Relation{Name: name, Reason: reason, Policies: policies}
}

// scenarios are the personas of SPEC §5 as grant sets.
func scenarios() map[string]*grant.Set {
	alice := &grant.Set{Version: 7, Relations: map[string]*grant.Relation{
		"public.customers": allow("public.customers", eq("id", int64(1)),
			map[string]grant.Mask{"ssn": {Kind: grant.MaskPartial, Keep: 4}}, "customer-own-row"),
		"public.accounts": func() *grant.Relation {
			r := allow("public.accounts", eq("customer_id", int64(1)), nil, "customer-own-accounts")
			r.Allowed[grant.Update] = true
			r.Filter[grant.Update] = grant.And{Terms: []grant.Expr{eq("customer_id", int64(1)), grant.Compare{Op: grant.Ge, Left: col("balance"), Right: grant.Literal{V: "0", Type: "numeric"}}}}
			r.Allowed[grant.Insert] = true
			r.Filter[grant.Insert] = eq("customer_id", int64(1))
			r.Allowed[grant.Delete] = true
			r.Filter[grant.Delete] = grant.And{Terms: []grant.Expr{eq("customer_id", int64(1)), eq("balance", int64(0))}}
			return r
		}(),
		"public.transactions": allow("public.transactions",
			grant.In{Column: "account_id", Values: []grant.Literal{lit(int64(10)), lit(int64(11))}}, nil, "customer-own-transactions"),
		"public.support_tickets": deny("public.support_tickets", "customers cannot read support tickets", "support-staff-only"),
		"Sales.Orders":           allow("Sales.Orders", grant.Compare{Op: grant.Eq, Left: col("Customer"), Right: lit("O'Brien \\ $$x$$")}, nil, "orders"),
	}}
	bob := &grant.Set{Version: 3, Relations: map[string]*grant.Relation{
		"public.accounts": allow("public.accounts", eq("customer_id", int64(1)),
			map[string]grant.Mask{"iban": {Kind: grant.MaskPartial, Keep: 4}}, "delegation-d1"),
		"public.transactions": allow("public.transactions", grant.And{Terms: []grant.Expr{
			grant.In{Column: "account_id", Values: []grant.Literal{lit(int64(10)), lit(int64(11))}},
			grant.In{Column: "category", Values: []grant.Literal{lit("tax"), lit("income")}},
		}}, nil, "delegation-d1"),
		"public.customers":       deny("public.customers", "the delegation does not cover customers", "delegation-d1"),
		"public.support_tickets": deny("public.support_tickets", "the delegation does not cover support tickets", "delegation-d1"),
	}}
	dana := &grant.Set{Version: 11, Relations: map[string]*grant.Relation{
		"public.customers": allow("public.customers", grant.NotNull{Column: "id"}, map[string]grant.Mask{
			"id":         {Kind: grant.MaskHash, Key: "customer"},
			"name":       {Kind: grant.MaskNull},
			"email":      {Kind: grant.MaskEmail},
			"ssn":        {Kind: grant.MaskRedact},
			"phone":      {Kind: grant.MaskRedact},
			"birth_date": {Kind: grant.MaskTruncate, Unit: "year"},
		}, "analytics"),
		"public.accounts": func() *grant.Relation {
			r := allow("public.accounts", grant.True, map[string]grant.Mask{
				"customer_id": {Kind: grant.MaskHash, Key: "customer"},
				"iban":        {Kind: grant.MaskNull},
				"balance":     {Kind: grant.MaskRound, Step: 100},
				"opened_at":   {Kind: grant.MaskTruncate, Unit: "month"},
			}, "analytics")
			// Analysts may correct accounts they see (all of them) and add
			// ones with a positive id; reads stay masked.
			r.Allowed[grant.Update] = true
			r.Filter[grant.Update] = grant.True
			r.Allowed[grant.Insert] = true
			r.Filter[grant.Insert] = grant.Compare{Op: grant.Gt, Left: col("id"), Right: lit(int64(0))}
			return r
		}(),
		"public.transactions": allow("public.transactions", grant.Or{Terms: []grant.Expr{
			grant.Compare{Op: grant.Ge, Left: col("booked_at"), Right: grant.Literal{V: "2024-01-01T00:00:00Z", Type: "timestamptz"}},
			grant.Not{X: eq("category", "medical")},
		}}, map[string]grant.Mask{
			"amount":   {Kind: grant.MaskBucket, Step: 50},
			"merchant": {Kind: grant.MaskRedact},
		}, "analytics"),
		"public.support_tickets": deny("public.support_tickets", "analytics purpose excludes tickets", "analytics"),
	}}
	none := &grant.Set{Version: 1, Relations: map[string]*grant.Relation{}}
	// deleter may delete its own accounts blindly but read nothing.
	deleter := &grant.Set{Version: 2, Relations: map[string]*grant.Relation{
		"public.accounts": {
			Name:     "public.accounts",
			Allowed:  map[grant.Action]bool{grant.Delete: true},
			Filter:   map[grant.Action]grant.Expr{grant.Delete: eq("customer_id", int64(1))},
			Policies: []string{"cleanup"},
		},
	}}
	return map[string]*grant.Set{"alice": alice, "bob": bob, "dana": dana, "none": none, "deleter": deleter}
}

// setSource serves a grant.Set and records what was asked.
type setSource struct {
	set   *grant.Set
	asked [][]string
}

func (s *setSource) Grants(names []string) (*grant.Set, error) {
	s.asked = append(s.asked, names)
	return s.set, nil
}

// aliceDocs grants reading public.docs where owner = 'alice', with masks.
func aliceDocs(masks map[string]grant.Mask) *grant.Set {
	return &grant.Set{Version: 1, Relations: map[string]*grant.Relation{"public.docs": {
		Name:    "public.docs",
		Allowed: map[grant.Action]bool{grant.Select: true},
		Filter:  map[grant.Action]grant.Expr{grant.Select: grant.Compare{Op: grant.Eq, Left: grant.Column{Name: "owner"}, Right: grant.Literal{V: "alice"}}},
		Masks:   masks,
	}}}
}

// docsOnly protects public.docs and nothing else.
func docsOnly(n string) bool { return n == "public.docs" }

// connectPG connects to c as postgres until the test ends.
func connectPG(t testing.TB, c *pgtest.Cluster) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.DSN("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
