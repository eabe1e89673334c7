package rewrite

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestWholeRowOnPostgres: a whole-row reference to a protected relation has
// the table's row type (not record), carries masked values, and is NULL for
// a null-extended outer-join row but a row for a visible all-NULL row.
func TestWholeRowOnPostgres(t *testing.T) {
	conn, cat, set, opts := wholeRowDocs(t)
	ctx := context.Background()
	for _, tc := range []struct{ sql, want string }{
		{`SELECT pg_typeof(d)::text FROM docs d LIMIT 1`, "docs"},
		{`SELECT string_agg(row_to_json(d.*)::text, ' ' ORDER BY d.id) FROM docs d`, `{"id":1,"owner":"alice","secret":"***"} {"id":null,"owner":"alice","secret":"***"}`},
		{`SELECT string_agg(coalesce(d::text, 'NULL'), ' ' ORDER BY k) FROM keys LEFT JOIN docs d ON d.id = k`, "(1,alice,***) NULL NULL"},
		{`SELECT count(*)::text FROM docs d, keys WHERE d IS DISTINCT FROM NULL AND k = 1`, "2"},
	} {
		res, err := RewriteSQL(tc.sql, cat, Session{}, &setSource{set: set}, opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		var got string
		if err := conn.QueryRow(ctx, res.SQL).Scan(&got); err != nil {
			t.Fatalf("%s: %v\nrewritten: %s", tc.sql, err, res.SQL)
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q\nrewritten: %s", tc.sql, got, tc.want, res.SQL)
		}
	}
}

// TestWholeRowKeepsColumnName (red team round 33, F2): a whole-row
// reference under a cast, COLLATE or CASE names its output column as in
// PostgreSQL (after the reference), not "row" after its replacement.
func TestWholeRowKeepsColumnName(t *testing.T) {
	conn, cat, set, opts := wholeRowDocs(t)
	ctx := context.Background()
	names := func(sql string) []string {
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		defer rows.Close()
		var out []string
		for _, f := range rows.FieldDescriptions() {
			out = append(out, f.Name)
		}
		return out
	}
	for _, sql := range []string{
		`SELECT d::text FROM keys, docs d WHERE d.id = k`,
		`SELECT (d)::text FROM keys, docs d WHERE d.id = k`,
		`SELECT d FROM keys, docs d WHERE d.id = k`,
		`SELECT docs::text FROM keys, docs WHERE docs.id = k`,
		`SELECT d::text, k FROM keys LEFT JOIN docs d ON d.id = k`,
		`SELECT CASE WHEN k > 0 THEN d::text END FROM keys LEFT JOIN docs d ON d.id = k`,
		`SELECT d::text COLLATE "C" FROM keys, docs d WHERE d.id = k`,
		`SELECT d::text AS x FROM keys, docs d WHERE d.id = k`,
		`SELECT d::text FROM docs d WHERE lower(d.owner) = 'alice'`,
	} {
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: set}, opts)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got, want := names(res.SQL), names(sql); !slices.Equal(got, want) {
			t.Errorf("%s: columns %q, want %q\nrewritten: %s", sql, got, want, res.SQL)
		}
	}
}

// wholeRowDocs starts PostgreSQL with alice's and bob's docs (secret
// redacted) and keys 1–3, and returns a connection and what a rewrite needs.
func wholeRowDocs(t *testing.T) (*pgx.Conn, *Catalog, *grant.Set, *Options) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer, owner text, secret text);
		INSERT INTO public.docs VALUES (1, 'alice', 's1'), (2, 'bob', 's2'), (NULL, 'alice', NULL);
		CREATE TABLE public.keys (k integer);
		INSERT INTO public.keys VALUES (1), (2), (3)`)
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer", "owner text", "secret text").
		Table("public.keys", "k integer").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	return connectPG(t, c), cat, aliceDocs(map[string]grant.Mask{"secret": {Kind: grant.MaskRedact}}), &Options{Protected: docsOnly}
}
