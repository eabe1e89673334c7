package rewrite

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestLongInFiltersHashed (red team round 27): a filter's IN list of 9 or
// more values is one = ANY over a constant array, which PostgreSQL probes
// through a hash table, not a chain of ORs whose 150 comparisons per row a
// one-comparison user test, sorted ahead of it, switched on and off on
// hidden rows. The rows are those of the IN list; shorter lists keep the
// OR form; varchar and timestamptz columns take the array form too.
func TestLongInFiltersHashed(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer PRIMARY KEY, owner varchar(20), note text, at timestamptz);
		INSERT INTO public.docs SELECT i, 'u' || (i % 40), 'n' || i, timestamptz '2024-01-01 00:00:00+00' + (i % 30) * interval '1 day'
			FROM generate_series(1, 2000) i`)
	cat, err := NewCatalogBuilder().Table("public.docs", "id integer", "owner character varying(20)", "note text", "at timestamp with time zone").Build()
	if err != nil {
		t.Fatal(err)
	}
	conn := connectPG(t, c)
	ints := func(n int) []grant.Literal {
		out := make([]grant.Literal, n)
		for i := range out {
			out[i] = grant.Literal{V: int64(7 * (i + 1))}
		}
		return out
	}
	owners := make([]grant.Literal, 10)
	days := make([]grant.Literal, 10) // Cedar datetimes
	for i := range owners {
		owners[i] = grant.Literal{V: fmt.Sprintf("u%d", i)}
		days[i] = grant.Literal{V: fmt.Sprintf("2024-01-%02dT00:00:00Z", i+1), Type: "timestamptz"}
	}
	for _, tt := range []struct {
		filter grant.In
		hashed bool
		byHand string
	}{
		{grant.In{Column: "id", Values: ints(150)}, true, "id % 7 = 0 AND id <= 1050"},
		{grant.In{Column: "id", Values: ints(8)}, false, "id % 7 = 0 AND id <= 56"},
		{grant.In{Column: "owner", Values: owners}, true, "owner IN ('u0','u1','u2','u3','u4','u5','u6','u7','u8','u9')"},
		{grant.In{Column: "at", Values: days}, true, "at < timestamptz '2024-01-11 00:00:00+00'"},
	} {
		set := aliceDocs(nil)
		set.Relations["public.docs"].Filter[grant.Select] = tt.filter
		res, err := RewriteSQL("SELECT id, owner FROM docs WHERE note <> 'x' ORDER BY id", cat, Session{}, &setSource{set: set}, &Options{Protected: docsOnly})
		if err != nil {
			t.Fatal(err)
		}
		sql := res.Statements[0].SQL
		if hashed := strings.Contains(sql, "ANY(ARRAY["); hashed != tt.hashed {
			t.Errorf("%d values of %s: array form %v, want %v: %s", len(tt.filter.Values), tt.filter.Column, hashed, tt.hashed, sql)
		}
		want := rowsOf(t, conn, "SELECT id, owner FROM docs WHERE note <> 'x' AND "+tt.byHand+" ORDER BY id")
		if got := rowsOf(t, conn, sql); got != want {
			t.Errorf("%d values of %s: rows differ from the IN list's\n%s", len(tt.filter.Values), tt.filter.Column, sql)
		}
	}
}
