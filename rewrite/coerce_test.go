package rewrite

import "testing"

// citextCatalog has what the citext extension adds to a database, in
// miniature: public overloads of max and < that PostgreSQL picks only for
// arguments that reach public.citext, which no built-in type does
// implicitly.
func citextCatalog(t *testing.T, coercions bool) *Catalog {
	t.Helper()
	cat, err := NewCatalogBuilder().
		Table("public.t", "id integer", "n numeric", "name text", "c public.citext", "d public.dom", "v character varying(10)").
		Function(&Function{Schema: "pg_catalog", Name: "max", NArgs: 1, Args: []string{"numeric"}, Result: "numeric", Leakproof: true, Volatility: Immutable, Kind: KindAggregate}).
		Function(&Function{Schema: "pg_catalog", Name: "max", NArgs: 1, Args: []string{"text"}, Result: "text", Leakproof: true, Volatility: Immutable, Kind: KindAggregate}).
		Function(&Function{Schema: "pg_catalog", Name: "max", NArgs: 1, Args: []string{"anyarray"}, Leakproof: true, Volatility: Immutable, Kind: KindAggregate}).
		Function(&Function{Schema: "public", Name: "max", NArgs: 1, Args: []string{"public.citext"}, Result: "public.citext", Volatility: Immutable, Kind: KindAggregate}).
		Function(&Function{Schema: "pg_catalog", Name: "length", NArgs: 1, Args: []string{"text"}, Result: "int4", Leakproof: true, Volatility: Immutable, Kind: KindFunction}).
		Operator(&Operator{Schema: "pg_catalog", Name: "<", Left: "numeric", Right: "numeric", Result: "bool", Leakproof: true}).
		Operator(&Operator{Schema: "pg_catalog", Name: "<", Left: "int4", Right: "int4", Result: "bool", Leakproof: true}).
		Operator(&Operator{Schema: "pg_catalog", Name: "<", Left: "text", Right: "text", Result: "bool", Leakproof: true}).
		Operator(&Operator{Schema: "public", Name: "<", Left: "public.citext", Right: "public.citext", Result: "bool"}).
		Operator(&Operator{Schema: "pg_catalog", Name: "=", Left: "text", Right: "text", Result: "bool", Leakproof: true}).
		Operator(&Operator{Schema: "public", Name: "=", Left: "text", Right: "varchar", Result: "bool"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if coercions {
		cat.ImplicitCasts = map[string][]string{"int4": {"int8", "numeric", "float8"}, "numeric": {"float8"},
			"public.citext": {"text"}, "varchar": {"text"}, "text": {"varchar"}}
		cat.Pseudo = map[string]bool{"anyarray": true, "anyelement": true, "anyrange": true, "anyenum": true, "unknown": true}
		cat.Domains = map[string]string{"public.dom": "public.citext"}
	}
	return cat
}

// TestOverloadsByCoercion (red team round 40b): an overload counts only if
// the arguments' known types reach its parameters implicitly; an untyped
// literal or parameter, a type the rewriter cannot infer and a domain over
// the extension's type still reach it.
func TestOverloadsByCoercion(t *testing.T) {
	unprotected := &Options{Protected: func(string) bool { return false }, Functions: DefaultFunctions()}
	check := func(cat *Catalog, want map[string]bool) {
		t.Helper()
		for sql, refused := range want {
			_, err := RewriteSQL(sql, cat, Session{}, nil, unprotected)
			if got := err != nil; got != refused {
				t.Errorf("%s: refused %v, want %v (%v)", sql, got, refused, err)
			}
		}
	}
	check(citextCatalog(t, true), map[string]bool{
		"SELECT max(n) FROM t":                        false,
		"SELECT max(name) FROM t":                     false,
		"SELECT max(id) FROM t":                       false, // int4 reaches numeric, not citext
		"SELECT max(c) FROM t":                        true,
		"SELECT max(d) FROM t":                        true, // a domain over citext
		"SELECT max(lower(name)) FROM t":              true, // lower's type is not in this catalog
		"SELECT id FROM t WHERE n < 0":                false,
		"SELECT id FROM t WHERE length(name) < 3":     false, // typed by the call's result
		"SELECT id FROM t WHERE max(n) < 3":           false,
		"SELECT id FROM t WHERE 'a' < 'b'":            false, // two unknowns are text
		"SELECT id FROM t WHERE c < 'x'":              true,
		"SELECT id FROM t WHERE d < 'x'":              true,
		"SELECT id FROM t WHERE name < c":             false, // citext reaches text, not text citext
		"SELECT id FROM t WHERE n < $1":               false,
		"SELECT id FROM t WHERE $1 < $2":              false,
		"SELECT id FROM t WHERE (n, name) < (1, 'a')": false,
		"SELECT id FROM t WHERE (n, c) < (1, 'a')":    true,
		"SELECT id FROM t ORDER BY n USING <":         false,
		"SELECT id FROM t ORDER BY c USING <":         true,
		// varchar is not text to the lookup (red team round 41).
		"SELECT id FROM t WHERE name = v":            true,
		"SELECT id FROM t WHERE name = 'x'::varchar": true,
		"SELECT id FROM t WHERE v = name":            false,
	})
	// An operator on (unknown, unknown) is PostgreSQL's exact match for two
	// untyped literals, wherever it is on the path (red team round 48a).
	uu := citextCatalog(t, true)
	uu.Operators = append(uu.Operators, &Operator{Schema: "public", Name: "<", Left: "unknown", Right: "unknown", Result: "bool"})
	uu, err := NewCatalog(schemasOf(uu), uu.Operators)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RewriteSQL("SELECT 'a' < 'b'", uu, Session{}, nil, unprotected)
	if err == nil {
		t.Error("'a' < 'b' allowed beside public.<(unknown, unknown)")
	}
	// Without pg_cast's implicit casts every overload of a name counts.
	check(citextCatalog(t, false), map[string]bool{
		"SELECT max(n) FROM t":         true,
		"SELECT id FROM t WHERE n < 0": true,
	})
}

// TestCoercible: what can_coerce_type allows, as far as the rewriter tells
// it, and the pseudo-types that take only their kind of type.
func TestCoercible(t *testing.T) {
	cat := citextCatalog(t, true)
	for _, tt := range []struct {
		src, dst string
		want     bool
	}{
		{"int4", "numeric", true},
		{"int4", "int4", true},
		{"numeric", "int4", false},
		{"numeric", "public.citext", false},
		{"public.citext", "text", true},
		{"public.dom", "public.citext", true},
		{"", "public.citext", true},
		{"unknown", "public.citext", true},
		{"int4", "anyelement", true},
		{"int4", "anyarray", false},
		{"_int4", "anyarray", true},
		{"int4range", "anyrange", true},
		{"int4", "anyrange", false},
		{"text", "anyenum", false},
	} {
		if got := cat.coercible(tt.src, tt.dst); got != tt.want {
			t.Errorf("coercible(%q, %q) = %v, want %v", tt.src, tt.dst, got, tt.want)
		}
	}
}

// schemasOf lists a catalog's schemas, to build another from them.
func schemasOf(c *Catalog) []*Schema {
	out := make([]*Schema, 0, len(c.Schemas))
	for _, s := range c.Schemas {
		out = append(out, s)
	}
	return out
}
