package rewrite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestPushdownOnPostgres: in a fenced statement, the user's leakproof
// column-versus-constant conjuncts are copied into the derived table
// (pushdown.go), so PostgreSQL probes the index on them instead of reading
// every row the filter lets through, and the rows are those of the
// statement over the filtered table.
func TestPushdownOnPostgres(t *testing.T) {
	conn, cat := docsOnPostgres(t)
	set := aliceDocs(nil)
	opts := &Options{Protected: docsOnly}
	ctx := context.Background()

	for _, tt := range []struct {
		sql    string
		pushed bool // whether the index must be probed
	}{
		{`SELECT id, note FROM docs WHERE id = 4001 AND note LIKE 'n%'`, true},
		{`SELECT id FROM docs WHERE id = 4002 AND note LIKE 'n%'`, true}, // bob's: no row
		{`SELECT id FROM docs d WHERE d.id BETWEEN 10 AND 20 AND lower(note) <> 'x' ORDER BY id`, true},
		{`SELECT count(*) FROM docs WHERE id IN (1, 2, 3, 4) AND length(note) > 1`, true},
		{`SELECT d.id FROM generate_series(1, 3) g(i) JOIN docs d ON d.id = g.i * 5 WHERE 100 > d.id AND g.i % 2 = 1 ORDER BY 1`, true},
		{`SELECT id FROM docs WHERE id + 0 = 4001 AND note LIKE 'n%'`, false},
	} {
		res, err := RewriteSQL(tt.sql, cat, Session{}, &setSource{set: set}, opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.sql, err)
		}
		rewritten := res.Statements[0].SQL
		if !res.Statements[0].Fenced {
			t.Fatalf("%s: expected a fenced statement: %s", tt.sql, rewritten)
		}
		byHand := strings.Replace(tt.sql, "docs", "(SELECT * FROM docs WHERE owner = 'alice') docs", 1)
		byHand = strings.Replace(byHand, "docs d", "d", 1)
		if got, want := rowsOf(t, conn, rewritten), rowsOf(t, conn, byHand); got != want {
			t.Errorf("%s: rows %s, want %s\n%s", tt.sql, got, want, rewritten)
		}
		var plan []byte
		if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+rewritten).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var nodes []any
		_ = json.Unmarshal(plan, &nodes)
		if probed := strings.Contains(fmt.Sprint(nodes), "Index Scan"); probed != tt.pushed {
			t.Errorf("%s: index scan %v, want %v\n%s\n%s", tt.sql, probed, tt.pushed, rewritten, plan)
		}
	}
}

// TestStrictFenceOnPostgres: with StrictFence nothing is copied into the
// fenced derived table, so the user's comparison is evaluated only on rows
// the filter passed: the index on id goes unused (the filter's owner has
// none), and the rows are the same.
func TestStrictFenceOnPostgres(t *testing.T) {
	conn, cat := docsOnPostgres(t)
	const sql = `SELECT id, note FROM docs WHERE id = 4001`
	for _, strict := range []bool{false, true} {
		opts := &Options{Protected: docsOnly, AlwaysFence: true, StrictFence: strict}
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: aliceDocs(nil)}, opts)
		if err != nil {
			t.Fatal(err)
		}
		rewritten := res.Statements[0].SQL
		if copies := strings.Count(rewritten, "4001"); copies != map[bool]int{false: 2, true: 1}[strict] {
			t.Errorf("strict %v: %d comparisons with 4001: %s", strict, copies, rewritten)
		}
		if got := rowsOf(t, conn, rewritten); got != "[[4001 n4001]]" {
			t.Errorf("strict %v: rows %s", strict, got)
		}
		var plan string
		if err := conn.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+rewritten).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		if probed := strings.Contains(plan, "Index Scan"); probed == strict {
			t.Errorf("strict %v: index scan %v\n%s", strict, probed, plan)
		}
	}
}

// docsOnPostgres starts a PostgreSQL with public.docs, 20,000 rows of which
// alice owns two in three, indexed by id, and returns a connection and the
// table's catalog.
func docsOnPostgres(t *testing.T) (*pgx.Conn, *Catalog) {
	t.Helper()
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer PRIMARY KEY, owner text, note text);
		INSERT INTO public.docs SELECT i, CASE WHEN i % 3 = 0 THEN 'bob' ELSE 'alice' END, 'n' || i
			FROM generate_series(1, 20000) i;
		ANALYZE public.docs`)
	cat, err := NewCatalogBuilder().Table("public.docs", "id integer", "owner text", "note text").Build()
	if err != nil {
		t.Fatal(err)
	}
	return connectPG(t, c), cat
}

// rowsOf runs sql and prints its rows in order.
func rowsOf(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return fmt.Sprint(vals)
}
