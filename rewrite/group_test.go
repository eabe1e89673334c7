package rewrite

import (
	"context"
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestGroupedByPrimaryKey (red team round 33, F1): PostgreSQL lets a query
// grouped by a table's primary key read its other columns, not a derived
// table's; the rewrite adds them to GROUP BY when the key is unmasked
// (a masked key is no key), for plain GROUP BY lists only.
func TestGroupedByPrimaryKey(t *testing.T) {
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer PRIMARY KEY", "owner text", "secret text").
		Table("public.keys", "k integer").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	parent, err := NewCatalogBuilder().
		Relation(&Table{Schema: "public", Name: "docs", Kind: KindTable, BaseTables: []string{"public.docs_child"},
			Columns: []*Column{{Name: "id", Type: "integer", PrimaryKey: true}, {Name: "owner", Type: "text"}, {Name: "secret", Type: "text"}}}).
		Table("public.docs_child", "id integer", "owner text", "secret text").
		Table("public.keys", "k integer").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{Protected: func(n string) bool { return n == "public.docs" || n == "public.docs_child" }}
	// An inheritance parent's key may repeat over its children's rows.
	res, err := RewriteSQL("SELECT d.owner, count(*) FROM docs d, keys WHERE d.id = k GROUP BY d.id", parent, Session{}, &setSource{set: aliceDocs(nil)}, opts)
	if _, group, _ := strings.Cut(res.SQL, "GROUP BY"); err != nil || strings.Contains(group, "secret") {
		t.Errorf("a parent's key: %s, %v; want nothing added", res.SQL, err)
	}
	const join = "SELECT d.owner, count(*) FROM docs d, keys WHERE d.id = k "
	for _, c := range []struct {
		sql   string
		masks map[string]grant.Mask
		want  string // in the rewritten GROUP BY; "" for none added
	}{
		{join + "GROUP BY d.id", nil, "GROUP BY d.id, d.owner, d.secret"},
		{join + "GROUP BY id, d.owner", nil, "GROUP BY id, d.owner, d.secret"},
		{join + "GROUP BY d.id", map[string]grant.Mask{"id": {Kind: grant.MaskNull}}, ""},
		{join + "GROUP BY ROLLUP (d.id)", nil, ""},
		{join + "GROUP BY d.owner", nil, ""},
		{"SELECT d.owner FROM keys, (SELECT * FROM docs) d WHERE d.id = k GROUP BY d.id", nil, ""},
	} {
		res, err := RewriteSQL(c.sql, cat, Session{}, &setSource{set: aliceDocs(c.masks)}, opts)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		_, group, _ := strings.Cut(res.SQL, "GROUP BY")
		added := strings.Contains(group, "secret")
		if c.want == "" && added || c.want != "" && !strings.Contains(res.SQL, c.want) {
			t.Errorf("%s (masks %v):\n%s\nwant %q", c.sql, c.masks, res.SQL, c.want)
		}
	}
}

// TestGroupedByPrimaryKeyOnPostgres: the added GROUP BY runs, with the
// same groups as the key alone, and leaves out types without equality
// (json, point), which GROUP BY cannot name.
func TestGroupedByPrimaryKeyOnPostgres(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer PRIMARY KEY, owner text, secret text, j json, p point);
		INSERT INTO public.docs VALUES (1, 'alice', 's', '{}', '(1,2)'), (2, 'alice', 's', '[]', NULL), (3, 'bob', 't', NULL, NULL);
		CREATE TABLE public.keys (k integer);
		INSERT INTO public.keys VALUES (1), (1), (2), (3)`)
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer PRIMARY KEY", "owner text", "secret text", "j json", "p point").
		Table("public.keys", "k integer").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	const sql = "SELECT string_agg(n::text, ',' ORDER BY n) FROM (SELECT d.owner, count(*) AS n FROM docs d, keys WHERE d.id = k GROUP BY d.id) g"
	res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: aliceDocs(nil)}, &Options{Protected: docsOnly})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := connectPG(t, c).QueryRow(context.Background(), res.SQL).Scan(&got); err != nil {
		t.Fatalf("%v\nrewritten: %s", err, res.SQL)
	}
	if got != "1,2" {
		t.Errorf("group sizes %q, want 1,2 (alice's two docs)\nrewritten: %s", got, res.SQL)
	}
}
