package rewrite

import (
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
)

// TestQualifiedNames: a function or operator name another schema has too
// is written with the schema mandate resolved it to (qualify.go); a name
// only one schema has is left as written, and so is a name whose pick
// mandate leaves open among several allowed schemas. Function names are
// qualified in the client's text (its comments kept); an operator needs
// the deparser, as OPERATOR(s.op) binds as no bare operator does.
func TestQualifiedNames(t *testing.T) {
	cat := citextCatalog(t, true)
	fns := DefaultFunctions()
	fns["public.<"] = true
	opts := &Options{Protected: func(string) bool { return false }, Functions: fns}
	rewritesTo(t, cat, nil, opts, map[string]string{
		"SELECT max(n) /* c */ FROM t":                             "SELECT pg_catalog.max(n) /* c */ FROM public.t",
		`SELECT"max"(n) FROM t`:                                    `SELECT pg_catalog."max"(n) FROM public.t`,
		"SELECT length(name) /* c */ FROM t":                       "SELECT length(name) /* c */ FROM public.t",
		"SELECT id FROM t WHERE n < 1":                             "SELECT id FROM public.t WHERE n OPERATOR(pg_catalog.<) 1",
		"SELECT id FROM t WHERE c < c":                             "SELECT id FROM public.t WHERE c OPERATOR(public.<) c",
		"SELECT n FROM t ORDER BY n USING <":                       "SELECT n FROM public.t ORDER BY n USING OPERATOR(pg_catalog.<)",
		"SELECT n FROM t ORDER BY 1 USING <":                       "SELECT n FROM public.t ORDER BY 1 USING OPERATOR(pg_catalog.<)",
		"SELECT n < ALL (ARRAY[1.5]) FROM t":                       "SELECT n OPERATOR(pg_catalog.<) ALL(ARRAY[1.5]) FROM public.t",
		"SELECT id FROM t WHERE n < (SELECT 1) AND name LIKE 'a%'": "SELECT id FROM public.t WHERE n OPERATOR(pg_catalog.<) (SELECT 1) AND name LIKE 'a%'",
		"SELECT (n, id) < (1.5, 2) FROM t":                         "SELECT (n, id) OPERATOR(pg_catalog.<) (1.5, 2) FROM public.t",
		"SELECT name = 'x' FROM t":                                 "SELECT name OPERATOR(pg_catalog.=) 'x' FROM public.t",
	})
}

// TestQualifiedNamesInPushedConjuncts (red team round 50b, medium): a
// conjunct copied into a fenced derived table beside its filter runs on
// every row the scan reads, hidden ones included; its operator must be
// written qualified as the outer one is (the copy had been made before
// the names were qualified, and a stale catalog's owner = ran there).
func TestQualifiedNamesInPushedConjuncts(t *testing.T) {
	cat := citextCatalog(t, true)
	set := &grant.Set{Version: 1, Relations: map[string]*grant.Relation{"public.t": allow("public.t", eq("id", int64(1)), nil)}}
	opts := &Options{AlwaysFence: true}
	res, err := RewriteSQL("SELECT id FROM t WHERE name = 'x'", cat, Session{}, &setSource{set: set}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(res.SQL, "OPERATOR(pg_catalog.=) 'x'"); n != 2 || strings.Contains(res.SQL, " = 'x'") {
		t.Errorf("want the outer conjunct and its copy qualified, got %s", res.SQL)
	}
}

// TestQualifiedBetween: BETWEEN becomes the comparisons PostgreSQL makes
// of it (transformAExprBetween), x copied into each, when an operator it
// uses has another schema's namesake; the forms read back as written.
func TestQualifiedBetween(t *testing.T) {
	b := NewCatalogBuilder().Table("public.t", "id integer", "n integer", "m text")
	for _, op := range []string{"<", ">", "<=", ">="} {
		b = b.Operator(&Operator{Schema: "pg_catalog", Name: op, Left: "int4", Right: "int4", Result: "bool", Leakproof: true})
	}
	cat, err := b.Operator(&Operator{Schema: "public", Name: ">=", Left: "public.e", Right: "public.e", Result: "bool"}).Build()
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{Protected: func(string) bool { return false }}
	// A copy pushed beside a fenced filter is written out too, and the
	// operand's copies read the derived table as the original does (red
	// team round 51a: a copy made before it replaced the relation read t
	// unfiltered; the pushed BETWEEN crashed the rewriter).
	set := &grant.Set{Version: 1, Relations: map[string]*grant.Relation{"public.t": allow("public.t", eq("n", int64(1)), nil)}}
	rewritesTo(t, cat, &setSource{set: set}, &Options{Functions: map[string]bool{"max": true}}, map[string]string{
		"SELECT id FROM t WHERE id BETWEEN 1 AND 100 AND m ~ 'x'": "SELECT id FROM (SELECT _m1.id, _m1.n, _m1.m FROM public.t _m1 WHERE _m1.n OPERATOR(pg_catalog.=) 1 AND (_m1.id OPERATOR(pg_catalog.>=) 1 AND _m1.id OPERATOR(pg_catalog.<=) 100) OFFSET 0) t WHERE (id OPERATOR(pg_catalog.>=) 1 AND id <= 100) AND m ~ 'x'",
		// Nested: only the innermost is written out, so nothing grows
		// exponentially (red team round 52b: nine levels of SYMMETRIC).
		"SELECT ((n BETWEEN SYMMETRIC 0 AND 2)::int4 BETWEEN SYMMETRIC 0 AND 2)::int4 BETWEEN SYMMETRIC 0 AND 2 FROM t": "SELECT (((n OPERATOR(pg_catalog.>=) 0 AND n <= 2) OR (n OPERATOR(pg_catalog.>=) 2 AND n <= 0))::int4 BETWEEN SYMMETRIC 0 AND 2)::int4 BETWEEN SYMMETRIC 0 AND 2 FROM public.t WHERE t.n OPERATOR(pg_catalog.=) 1",
		// Under IS NULL the deparser would drop the AND's parentheses:
		// BETWEEN as written, then.
		"SELECT (n BETWEEN 1 AND 3) IS NULL FROM t":            "SELECT (n BETWEEN 1 AND 3) IS NULL FROM (SELECT _m1.id, _m1.n, _m1.m FROM public.t _m1 WHERE _m1.n OPERATOR(pg_catalog.=) 1) AS t",
		"SELECT (SELECT max(id) FROM t)::int4 BETWEEN 1 AND 2": "SELECT (SELECT max(id) FROM (SELECT _m1.id, _m1.n, _m1.m FROM public.t _m1 WHERE _m1.n OPERATOR(pg_catalog.=) 1) t)::int4 OPERATOR(pg_catalog.>=) 1 AND (SELECT max(id) FROM (SELECT _m1.id, _m1.n, _m1.m FROM public.t _m1 WHERE _m1.n OPERATOR(pg_catalog.=) 1) t)::int4 <= 2",
	})
	rewritesTo(t, cat, nil, opts, map[string]string{
		"SELECT id BETWEEN 1 AND n FROM t": "SELECT id OPERATOR(pg_catalog.>=) 1 AND id <= n FROM public.t",
		// < and >: no namesake elsewhere.
		"SELECT NOT id NOT BETWEEN 1 AND 2 FROM t":                     "SELECT NOT id NOT BETWEEN 1 AND 2 FROM public.t",
		"SELECT NOT id BETWEEN SYMMETRIC 1 AND 2 FROM t":               "SELECT NOT ((id OPERATOR(pg_catalog.>=) 1 AND id <= 2) OR (id OPERATOR(pg_catalog.>=) 2 AND id <= 1)) FROM public.t",
		"SELECT CASE WHEN n BETWEEN 1 AND 2 IS TRUE THEN 1 END FROM t": "SELECT CASE WHEN (n OPERATOR(pg_catalog.>=) 1 AND n <= 2) IS TRUE THEN 1 END FROM public.t",
	})
}

// TestQualifiedGrammarNames (red team round 52a): json_object(…), which
// PostgreSQL 17's grammar (mandate's) writes as pg_catalog's and
// PostgreSQL 15 looks up on the path, is qualified in the forwarded text
// too; and an ORDER BY position decided for one output column makes no
// template for the others.
func TestQualifiedGrammarNames(t *testing.T) {
	cat, err := NewCatalogBuilder().Table("public.t", "id integer", "n integer").
		Function(&Function{Schema: "pg_catalog", Name: "json_object", NArgs: 1, Args: []string{"_text"}, Result: "json", Volatility: Immutable, Kind: KindFunction}).
		Function(&Function{Schema: "evil", Name: "json_object", NArgs: 1, Args: []string{"evil.e"}, Result: "json", Volatility: Immutable, Kind: KindFunction}).
		Operator(&Operator{Schema: "pg_catalog", Name: "<", Left: "int4", Right: "int4", Result: "bool", Leakproof: true}).
		Operator(&Operator{Schema: "evil", Name: "<", Left: "evil.e", Right: "evil.e", Result: "bool"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{Protected: func(string) bool { return false }}
	res, err := RewriteSQL("SELECT json_object('{a,b}')", cat, Session{}, nil, opts)
	if want := "SELECT pg_catalog.json_object('{a,b}')"; err != nil || res.SQL != want {
		t.Errorf("json_object: %v\n got %s\nwant %s", err, res.SQL, want)
	}
	res, err = RewriteSQL("SELECT id, n FROM t ORDER BY 2 USING < LIMIT 2", cat, Session{}, nil, opts)
	if err != nil || !strings.Contains(res.SQL, "USING OPERATOR(pg_catalog.<)") || res.Template != nil {
		t.Errorf("ORDER BY 2 USING <: %v, template %v: %s", err, res.Template != nil, res.SQL)
	}
}

// rewritesTo checks that each statement (the key) rewrites to its value.
func rewritesTo(t *testing.T, cat *Catalog, grants GrantSource, opts *Options, cases map[string]string) {
	t.Helper()
	for sql, want := range cases {
		res, err := RewriteSQL(sql, cat, Session{}, grants, opts)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
		} else if res.SQL != want {
			t.Errorf("%s:\n got %s\nwant %s", sql, res.SQL, want)
		}
	}
}
