package rewrite

import (
	"context"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestWholeRowOnPostgres: a whole-row reference to a protected relation has
// the table's row type (not record), carries masked values, and is NULL for
// a null-extended outer-join row but a row for a visible all-NULL row.
func TestWholeRowOnPostgres(t *testing.T) {
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
	set := aliceDocs(map[string]grant.Mask{"secret": {Kind: grant.MaskRedact}})
	opts := &Options{Protected: docsOnly}
	ctx := context.Background()
	conn := connectPG(t, c)
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
