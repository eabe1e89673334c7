package rewrite

import (
	"strings"
	"testing"
)

// TestOverloadsFurtherOnThePath (red team round 34, F1): PostgreSQL picks
// among the overloads of every schema on the path, so public.upper(bigint)
// answers upper(id) ahead of pg_catalog.upper(text), which needs a cast.
// A call that may resolve to a function off the allow-list is refused,
// whichever schema comes first; one whose argument count no such function
// takes is not.
func TestOverloadsFurtherOnThePath(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text", "ssn text").
		Function(&Function{Schema: "public", Name: "upper", NArgs: 1, Volatility: Stable, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "lower", NArgs: 3, Volatility: Stable, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "btrim", NArgs: 3, Defaults: 2, Volatility: Stable, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "initcap", NArgs: 2, Variadic: true, Volatility: Stable, Kind: KindFunction}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	src := &setSource{set: scenarios()["alice"]}
	checkRefused(t, cat, Session{}, src, "public.", map[string]bool{
		"SELECT upper(id) FROM customers":                        true,
		"SELECT upper(name) FROM customers":                      true, // public.upper(bigint) may still be the one
		"SELECT pg_catalog.upper(name) FROM customers":           false,
		"SELECT lower(name) FROM customers":                      false, // public.lower takes 3
		"SELECT btrim(name) FROM customers":                      true,  // its defaults fill the rest
		"SELECT initcap(name) FROM customers":                    true,  // variadic
		"SELECT upper(name) FROM customers WHERE id = 1":         true,
		"SELECT count(*) FROM customers WHERE upper(name) = 'A'": true,
	})
	// One with a built-in's very argument types is hidden by it.
	hidden, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text", "ssn text").
		Function(&Function{Schema: "pg_catalog", Name: "upper", NArgs: 1, Args: []string{"text"}, Volatility: Immutable, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "upper", NArgs: 1, Args: []string{"text"}, Volatility: Stable, Kind: KindFunction}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RewriteSQL("SELECT upper(name) FROM customers", hidden, Session{}, src, testOptions()); err != nil {
		t.Errorf("public.upper(text), hidden by pg_catalog.upper(text): %v", err)
	}
	if _, err := RewriteSQL("SELECT upper(name) FROM customers", hidden, Session{SearchPath: []string{"public", "pg_catalog"}}, src, testOptions()); err == nil {
		t.Error("public.upper(text) first on the path: allowed")
	}
	// Not when the call names its arguments (the built-in has no names),
	// nor one variadic and the other not, nor an ordered-set aggregate's
	// WITHIN GROUP arguments left uncounted (red team round 35).
	more, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text", "ssn text").
		Function(&Function{Schema: "pg_catalog", Name: "upper", NArgs: 1, Args: []string{"text"}, Volatility: Immutable, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "upper", NArgs: 1, Args: []string{"text"}, Volatility: Stable, Kind: KindFunction}).
		Function(&Function{Schema: "pg_catalog", Name: "jsonb_extract_path", NArgs: 2, Args: []string{"jsonb", "_text"}, Variadic: true, Volatility: Immutable, Kind: KindFunction}).
		Function(&Function{Schema: "public", Name: "jsonb_extract_path", NArgs: 2, Args: []string{"jsonb", "_text"}, Volatility: Stable, Kind: KindFunction}).
		Function(&Function{Schema: "pg_catalog", Name: "mode", NArgs: 1, Args: []string{"anyelement"}, Volatility: Immutable, Kind: KindAggregate}).
		Function(&Function{Schema: "public", Name: "mode", NArgs: 1, Args: []string{"text"}, Volatility: Immutable, Kind: KindAggregate}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"SELECT upper(s => name) FROM customers",
		"SELECT jsonb_extract_path('{}'::jsonb, ARRAY['a']) FROM customers",
		"SELECT mode() WITHIN GROUP (ORDER BY name) FROM customers",
	} {
		if _, err := RewriteSQL(sql, more, Session{}, src, testOptions()); err == nil || !strings.Contains(err.Error(), "public.") {
			t.Errorf("%s: %v; want a refusal naming public.*", sql, err)
		}
	}
	o := testOptions()
	o.Functions["public.upper"] = true // vetted: allowed
	if _, err := RewriteSQL("SELECT upper(id) FROM customers", cat, Session{}, src, o); err != nil {
		t.Errorf("public.upper on the allow-list: %v", err)
	}
}

// TestCastFunctionsChecked (red team rounds 35a F3, 36a F1): a cast run
// by a function outside pg_catalog (an extension's, the owner's CREATE
// CAST) is that function's call. While one is off the allow-list, casts of
// anything but untyped literals go only to built-in types, and to one such
// a cast ends in only from a built-in source: a domain over the cast's
// type, an array or a composite holding it, a domain source, all reached
// it.
func TestCastFunctionsChecked(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text", "tags text[]").
		Cast(&Cast{Source: "_text", Target: "public.hstore", Function: "public.hstore"}).
		Cast(&Cast{Source: "int8", Target: "public.card", Function: "public.card"}).
		Cast(&Cast{Source: "public.hstore", Target: "json", Function: "public.hstore_to_json"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	src := &setSource{set: scenarios()["alice"]}
	checkRefused(t, cat, Session{}, src, "cast to", map[string]bool{
		"SELECT ARRAY['a','b']::hstore":                                            true,
		"SELECT tags::public.hstore FROM customers":                                true,
		"SELECT id::card FROM customers":                                           true,
		"SELECT CAST(id AS card) FROM customers":                                   true,
		"SELECT id::card_d FROM customers":                                         true, // a domain over card
		"SELECT ARRAY[id]::_card FROM customers":                                   true,
		"SELECT ROW(id)::wrap FROM customers":                                      true, // a composite holding a card
		"SELECT id::int4::information_schema.cardinal_number::card FROM customers": true,
		"SELECT (SELECT h FROM x)::json":                                           true, // source unknown: maybe hstore
		"SELECT id::text FROM customers":                                           false,
		"SELECT id::int4::json FROM customers":                                     false,
		"SELECT 'a=>b'::hstore":                                                    false, // hstore_in
		"SELECT 'x'::card_d":                                                       false,
	})
	o := testOptions()
	for _, f := range []string{"public.card", "public.hstore", "public.hstore_to_json"} {
		o.Functions[f] = true
	}
	if _, err := RewriteSQL("SELECT id::card_d, ROW(id)::wrap FROM customers", cat, Session{}, src, o); err != nil {
		t.Errorf("with every cast function allowed: %v", err)
	}
}

// TestJSONBuildersAndCastsToJSON (red team round 37, F1): the JSON
// builders run a type's cast to json for a type that is not built-in, so
// while such a cast is off the allow-list their arguments must be of
// built-in types (or untyped literals).
func TestJSONBuildersAndCastsToJSON(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text").
		Cast(&Cast{Source: "public.cust_range", Target: "json", Function: "public.cust_range_json"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	src := &setSource{set: scenarios()["alice"]}
	checkRefused(t, cat, Session{}, src, "cast to json runs", map[string]bool{
		"SELECT to_json('[1,12]'::cust_range)":                              true,
		"SELECT json_build_array(name, '[1,2]'::cust_range) FROM customers": true,
		"SELECT json_agg(c) FROM customers c":                               true, // a row: its fields' types unknown here
		"SELECT to_json(id), jsonb_build_object('k', name) FROM customers":  false,
		"SELECT json_build_object('k', 1)":                                  false,
	})
	o := testOptions()
	o.Functions["public.cust_range_json"] = true
	if _, err := RewriteSQL("SELECT json_agg(c) FROM customers c", cat, Session{}, src, o); err != nil {
		t.Errorf("with the cast's function allowed: %v", err)
	}
}

// checkRefused rewrites each statement and checks that it is refused with
// an error containing fragment exactly when want says so.
func checkRefused(t *testing.T, cat *Catalog, sess Session, src GrantSource, fragment string, want map[string]bool) {
	t.Helper()
	for sql, refused := range want {
		_, err := RewriteSQL(sql, cat, sess, src, testOptions())
		if got := err != nil && strings.Contains(err.Error(), fragment); got != refused {
			t.Errorf("%s: refused %v, want %v (%v)", sql, got, refused, err)
		}
	}
}

// TestTypeNamesFollowThePath (red team round 38, F1): with public ahead of
// pg_catalog, 'x'::uuid may be public.uuid, a type with its own cast to
// json: not taken for the built-in.
func TestTypeNamesFollowThePath(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text").
		Cast(&Cast{Source: "public.uuid", Target: "json", Function: "public.uuid_json"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	src := &setSource{set: scenarios()["alice"]}
	publicFirst := Session{SearchPath: []string{"public", "pg_catalog"}}
	checkRefused(t, cat, publicFirst, src, "cast to json runs", map[string]bool{
		"SELECT to_json('[1,12]'::uuid)":                      true,
		"PREPARE p(uuid) AS SELECT to_json($1)":               true,
		"SELECT to_json('[1,12]'::pg_catalog.uuid)":           false,
		"SELECT jsonb_build_object('x', CAST('[4]' AS uuid))": true,
	})
	if _, err := RewriteSQL("SELECT to_json('00000000-0000-0000-0000-000000000000'::uuid)", cat, Session{}, src, testOptions()); err != nil {
		t.Errorf("uuid with pg_catalog first: %v", err)
	}
}

// TestJSONKeywordFollowsThePath (red team round 39, F1): PostgreSQL 17's
// grammar reads a bare json as pg_catalog.json; an older upstream looks it
// up on the path, where public.json may come first.
func TestJSONKeywordFollowsThePath(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.customers", "id bigint", "name text").
		Cast(&Cast{Source: "public.json", Target: "json", Function: "public.json_leak"}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	src := &setSource{set: scenarios()["alice"]}
	publicFirst := Session{SearchPath: []string{"public", "pg_catalog"}}
	checkRefused(t, cat, publicFirst, src, "", map[string]bool{
		"SELECT to_json('[1,12]'::json)":                true,
		"SELECT json_build_object('k', '[1,12]'::json)": true,
		"SELECT '[1,3]'::json::pg_catalog.json":         true,
		"SELECT to_json('{}'::pg_catalog.json)":         false,
		`SELECT to_json('{}'::"pg_catalog".json)`:       false,
	})
	if _, err := RewriteSQL("SELECT to_json('{}'::json)", cat, Session{}, src, testOptions()); err != nil {
		t.Errorf("json with pg_catalog first: %v", err)
	}
}
