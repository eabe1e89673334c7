package rewrite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestInlineMatchesDerivedOnPostgres: a statement written inline (inline.go)
// returns on PostgreSQL exactly what its derived-table rewrite returns: the
// same column names, types and origins, the same rows, or the same SQLSTATE.
func TestInlineMatchesDerivedOnPostgres(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer, owner text, secret text, amount integer);
		INSERT INTO public.docs VALUES (1, 'alice', 's-1111', 149), (2, 'bob', 's-2222', 250),
			(3, 'alice', NULL, 151), (4, 'alice', 's-4444', -150), (5, 'carol', 's-5555', 5)`)
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer", "owner text", "secret text", "amount integer").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	set := aliceDocs(map[string]grant.Mask{
		"secret": {Kind: grant.MaskPartial, Keep: 2},
		"amount": {Kind: grant.MaskRound, Step: 100},
	})
	inline := &Options{Protected: docsOnly}
	derived := &Options{Protected: docsOnly, noInline: true}
	ctx := context.Background()
	conn := connectPG(t, c)

	inlined := 0
	for _, sql := range []string{
		`SELECT * FROM docs`,
		`SELECT d.* FROM docs d ORDER BY id`,
		`SELECT *, id, d.* FROM docs d ORDER BY id`,
		`TABLE docs`,
		`SELECT id FROM ONLY docs WHERE id = 1`,
		`SELECT secret, secret::text, upper(secret), d.secret AS s, secret COLLATE "C", amount FROM docs d ORDER BY id`,
		`SELECT CASE WHEN id > 1 THEN 'x' ELSE secret END, CASE WHEN id > 1 THEN secret END FROM docs ORDER BY id`,
		`SELECT amount, count(*) FROM docs GROUP BY amount ORDER BY 1`,
		`SELECT sum(amount), max(secret), count(*) FILTER (WHERE secret = '****11'), array_agg(secret ORDER BY secret) FROM docs`,
		`SELECT id FROM docs WHERE secret = '****11'`,
		`SELECT id FROM docs WHERE id >= 2 AND owner = 'alice' ORDER BY docs.amount DESC, id`,
		`SELECT id, row_number() OVER (ORDER BY amount, id), sum(amount) OVER w FROM docs WINDOW w AS (PARTITION BY secret IS NULL) ORDER BY id`,
		`SELECT DISTINCT secret FROM docs ORDER BY secret`,
		`SELECT DISTINCT ON (amount) id FROM docs ORDER BY amount, id`,
		`SELECT id AS amount FROM docs ORDER BY amount`,
		`SELECT count(*), 1 FROM docs`,
		`SELECT id FROM docs ORDER BY id LIMIT 1 OFFSET 1`,
		`SELECT nosuch FROM docs`, // (docs.nosuch is refused before: attribute_test.go)
		`SELECT d.secret FROM docs d WHERE d.id IN (1, 3, 4) ORDER BY 1 NULLS FIRST`,
		`SELECT length(secret) FROM docs WHERE id = 4`,
		`SELECT a, c, d FROM docs AS x(a, b, c, d) ORDER BY a`,
		`SELECT d FROM docs d ORDER BY id`,
		`SELECT secret, count(DISTINCT amount) FROM docs GROUP BY ROLLUP (secret) ORDER BY 1, 2`,
		`SELECT DISTINCT ON (secret || '') id FROM docs ORDER BY secret || '', id`,
		`SELECT id FROM docs ORDER BY secret USING <, id`,
		`SELECT secret AS x FROM docs ORDER BY x NULLS LAST`,
	} {
		got, err := RewriteSQL(sql, cat, Session{}, &setSource{set: set}, inline)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		want, err := RewriteSQL(sql, cat, Session{}, &setSource{set: set}, derived)
		if err != nil {
			t.Fatalf("%s (derived): %v", sql, err)
		}
		if strings.Contains(want.SQL, "(SELECT _m") == false {
			t.Fatalf("%s: noInline wrote no derived table: %s", sql, want.SQL)
		}
		if !strings.Contains(got.SQL, "(SELECT _m") {
			inlined++
		}
		g, w := runOn(ctx, conn, got.SQL), runOn(ctx, conn, want.SQL)
		if g != w {
			t.Errorf("%s\ninline:  %s\n  -> %s\nderived: %s\n  -> %s", sql, got.SQL, g, want.SQL, w)
		}
	}
	if inlined < 15 {
		t.Errorf("only %d statements were inlined", inlined)
	}
}

// runOn returns a statement's columns (name, type, origin, typmod) and rows
// as text, or its SQLSTATE.
func runOn(ctx context.Context, conn *pgx.Conn, sql string) string {
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return "error: " + err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for _, f := range rows.FieldDescriptions() {
		// The origin too: drivers and GUI tools read it as the column's table.
		fmt.Fprintf(&b, "%s:%d:%d.%d:%d ", f.Name, f.DataTypeOID, f.TableOID, f.TableAttributeNumber, f.TypeModifier)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return "error: " + err.Error()
		}
		fmt.Fprintf(&b, "| %v ", vals)
	}
	if err := rows.Err(); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return "SQLSTATE " + pe.Code
		}
		return "error: " + err.Error()
	}
	return b.String()
}
