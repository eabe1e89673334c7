package rewrite

import (
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
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
	opts := &Options{Protected: docsOnly}
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
