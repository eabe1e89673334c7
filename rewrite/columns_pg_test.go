package rewrite

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestOutputColumnsMatchPostgres: where the rewriter names a query's
// output columns (columns.go), PostgreSQL gives them the same names. A name
// it got wrong would let x.name pass as a column where PostgreSQL calls the
// function name(x).
func TestOutputColumnsMatchPostgres(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `CREATE TABLE public.docs (id integer, owner text, secret text, amount integer)`)
	cat, err := NewCatalogBuilder().Table("public.docs", "id integer", "owner text", "secret text", "amount integer").Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSN("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	named := 0
	for _, sql := range []string{
		`SELECT * FROM docs`,
		`SELECT d.*, id AS x, d.owner FROM docs d`,
		`SELECT 2::int, lower('a')::text, CASE WHEN true THEN 1 END, CASE WHEN true THEN 1 ELSE 2::int8 END, CASE WHEN true THEN 1 ELSE id END FROM docs`,
		`SELECT CURRENT_DATE, coalesce(1, 2), EXISTS (SELECT 1), ROW(1, 2), ARRAY[1], NULLIF(1, 2), GREATEST(1, 2), LEAST(1, 2)`,
		`SELECT 'a'::text, 1::numeric(5,2), '2024-01-01'::timestamp with time zone, 1::double precision, '{1}'::integer[], 1, 1 + 1, $$x$$`,
		`SELECT ARRAY(SELECT 1), CURRENT_USER, LOCALTIME(2), (ROW(1, 2)).f1, 'x' COLLATE "C", current_schema, user, session_user, current_catalog`,
		`SELECT (d).id, (d.*).owner, d FROM docs d`,
		`SELECT id::text, amount::int8::text, pg_catalog.upper(owner), id IS NULL, NOT true, $1::int FROM docs`,
		`VALUES (1, 'a'), (2, 'b')`,
		`SELECT * FROM docs a JOIN docs b USING (id)`,
		`SELECT * FROM (SELECT 1 AS a, 2) s(x)`,
		`SELECT id FROM docs UNION SELECT amount FROM docs`,
		`SELECT count(*), sum(id) FILTER (WHERE id > 1), row_number() OVER () FROM docs GROUP BY id`,
		`SELECT LOCALTIMESTAMP, CURRENT_TIMESTAMP(3), CURRENT_TIME, CURRENT_ROLE`,
		`SELECT (SELECT 1 AS q), (SELECT id FROM docs LIMIT 1)`,
	} {
		stmts, err := Parse(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		w := newWalker(cat, Session{}, &Options{Functions: DefaultFunctions()}, "", false)
		sel := stmts.tree.Stmts[0].Stmt.GetSelectStmt()
		w.kind, w.root = KindSelect, sel
		cols, err := w.query(sel, nil, false, false)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if !cols.known {
			continue
		}
		named++
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, 1)
		}
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		var want []string
		for _, f := range rows.FieldDescriptions() {
			want = append(want, f.Name)
		}
		rows.Close()
		got := cols.names
		if !cols.exact {
			// Right as a set of names only (a join's): compare sets.
			got, want = distinct(got), distinct(want)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s\n  rewriter: %s\n  postgres: %s", sql, strings.Join(got, ","), strings.Join(want, ","))
		}
	}
	if named < 12 {
		t.Errorf("only %d of the queries had their columns named", named)
	}
}

func distinct(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
