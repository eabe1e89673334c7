package rewrite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestPreparedMatchesSimpleOnPostgres: a template's prepared form, executed
// with the instance's literals as parameters, answers on PostgreSQL exactly
// what the instance's rewrite answers as a simple query: the same columns
// (name, type, origin, typmod), rows and command tag, or the same SQLSTATE,
// through custom and generic plans alike. Statements where a parameter
// would not mean what the literal means are not prepared at all.
func TestPreparedMatchesSimpleOnPostgres(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, `
		CREATE TABLE public.docs (id integer, owner text, secret text, amount integer, big bigint, price numeric(10,2), small smallint);
		INSERT INTO public.docs VALUES (1, 'alice', 's-1111', 149, 10000000000, 1.50, 1), (2, 'bob', 's-2222', 250, 2, 2.25, 2),
			(3, 'alice', NULL, 151, -3, 3.00, 3), (4, 'alice', 's-4444', -150, 4, NULL, 4), (5, 'carol', 's-5555', 5, 5, 5.55, 5)`)
	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer", "owner text", "secret text", "amount integer", "big bigint", "price numeric(10,2)", "small smallint").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	set := &grant.Set{Version: 1, Relations: map[string]*grant.Relation{"public.docs": {
		Name:    "public.docs",
		Allowed: map[grant.Action]bool{grant.Select: true, grant.Update: true, grant.Insert: true, grant.Delete: true},
		Filter: map[grant.Action]grant.Expr{
			grant.Select: grant.Compare{Op: grant.Eq, Left: grant.Column{Name: "owner"}, Right: grant.Literal{V: "alice"}},
			grant.Update: grant.Compare{Op: grant.Eq, Left: grant.Column{Name: "owner"}, Right: grant.Literal{V: "alice"}},
			grant.Insert: grant.Compare{Op: grant.Eq, Left: grant.Column{Name: "owner"}, Right: grant.Literal{V: "alice"}},
			grant.Delete: grant.Compare{Op: grant.Eq, Left: grant.Column{Name: "owner"}, Right: grant.Literal{V: "alice"}},
		},
		Masks: map[string]grant.Mask{
			"secret": {Kind: grant.MaskPartial, Keep: 2},
			"amount": {Kind: grant.MaskRound, Step: 100},
		},
	}}}
	opts := &Options{Protected: func(n string) bool { return n == "public.docs" }}
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, c.DSN("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	prepared := []string{
		`SELECT id, amount FROM docs WHERE id = 1`,
		`SELECT 1, 2.5, 1e3, 10000000000, 1 + 1 FROM docs WHERE id < 3`,
		`SELECT .5, 1.50, 2E-2 FROM docs WHERE id = 1`,
		`SELECT id, amount * 2, secret, price + 0.5, small + 1, big - 1 FROM docs WHERE amount > 100 AND price < 4.5`,
		`SELECT id FROM docs WHERE id IN (1, 3, 4) AND big BETWEEN 0 AND 20000000000`,
		`SELECT id, CASE WHEN amount > 150 THEN 1 ELSE 2.5 END FROM docs WHERE id = 1 OR id = 3`,
		`SELECT count(*) + 1, sum(amount) / 2, max(price) * 1.5 FROM docs WHERE id > 0`,
		`SELECT id FROM docs WHERE id = 3 LIMIT 1 OFFSET 0`,
		`SELECT id, round(price, 1), substr(secret, 1, 3), left(owner, 2) FROM docs WHERE id <= 4`,
		`SELECT id FROM docs WHERE small = 3 AND big = 10000000000 OR big = 3`,
		`SELECT id, ARRAY[1, 2, id], (ARRAY[1, 2])[1] FROM docs WHERE id = 4`,
		`SELECT id FROM docs WHERE secret LIKE 's%' AND id <> 99`,
		`SELECT (SELECT max(id) FROM docs WHERE id < 4), 1 FROM docs WHERE id = 1`,
		`WITH d AS (SELECT id, amount FROM docs WHERE id > 1) SELECT id + 100 FROM d WHERE amount < 1000`,
		`SELECT id FROM docs WHERE id = 2147483647 OR big = 9223372036854775807`,
		`SELECT 1 / 0 FROM docs WHERE id = 1`,
		`SELECT id FROM docs WHERE id <> 5 OR 1 / 0 = 1`,
		`SELECT id FROM docs WHERE big = 9223372036854775808 OR id = 1`,
		`SELECT id FROM docs WHERE id <> 5 OR 100000::int2 = 1`,
		`SELECT id FROM docs WHERE id <> 5 OR 1 / (CASE WHEN 1 = 1 THEN 0 ELSE 1 END) = 1`,
		`SELECT 2147483647 + id FROM docs WHERE id = 1`,
		`SELECT id FROM docs WHERE small = 100000`,
		`SELECT pg_typeof(1), pg_typeof(1.5), pg_typeof(3000000000) FROM docs WHERE id = 1`,
		`UPDATE docs SET small = small + 1 WHERE id = 1 RETURNING id, small, amount`,
		`UPDATE docs SET small = 40000 WHERE id = 1`,
		`DELETE FROM docs WHERE id = 4 RETURNING id, secret`,
	}
	notPrepared := []string{
		`SELECT id FROM docs WHERE id > 1 ORDER BY 1`,
		`SELECT amount + 1 FROM docs WHERE id > 1 GROUP BY amount + 1`,
		`SELECT DISTINCT ON (1) id FROM docs WHERE id > 1`,
		`SELECT DISTINCT amount + 1 FROM docs WHERE id > 1 ORDER BY amount + 1`,
		`SELECT secret::varchar(3) FROM docs WHERE id = 1`,
		`SELECT id, sum(amount) OVER (ORDER BY id + 1) FROM docs WHERE id > 1`,
		`SELECT string_agg(secret, ',' ORDER BY id + 1) FROM docs WHERE id > 1`,
		`INSERT INTO docs (id, owner) VALUES (11, 'alice') ON CONFLICT (id) WHERE id > 5 DO NOTHING`,
		`SELECT id FROM docs WHERE id = 0x1 OR id = 1`,
		`SELECT id, 5, 2.5 FROM docs WHERE owner = 'alice'`,
		`SELECT id FROM docs WHERE id + 1 > amount * 2 LIMIT 2.5`,
		`SELECT id FROM docs WHERE id = ANY(ARRAY[1, 2]) AND big = 10000000000`,
	}
	// Only compared integers (and LIMIT, OFFSET) become parameters: any
	// other constant expression stays in the text, where PostgreSQL folds
	// it once, at planning, whatever the rows.
	inline := map[string][]string{
		`SELECT 1 / 0 FROM docs WHERE id = 1`:                                              {"1 / 0", "id = $1"},
		`SELECT id FROM docs WHERE id <> 5 OR 1 / 0 = 1`:                                   {"id <> $1", "1 / 0 = 1"},
		`SELECT id FROM docs WHERE id <> 5 OR 100000::int2 = 1`:                            {"100000::int2 = 1"},
		`SELECT id FROM docs WHERE id <> 5 OR 1 / (CASE WHEN 1 = 1 THEN 0 ELSE 1 END) = 1`: {"CASE WHEN 1 = 1"},
		`UPDATE docs SET small = 40000 WHERE id = 1`:                                       {"small = 40000", "id = $1"},
		`SELECT id FROM docs WHERE id = 3 LIMIT 1 OFFSET 0`:                                {"LIMIT $2 OFFSET $3"},
		`SELECT id FROM docs WHERE small = 3 AND big = 10000000000 OR big = 3`:             {"big = 10000000000", "big = $2"},
	}

	for i, sql := range prepared {
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: set}, opts)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if res.Template == nil {
			t.Errorf("%s: no template", sql)
			continue
		}
		p, ok := res.Template.Prepare(sql, res.Literals)
		if !ok {
			t.Errorf("%s: not prepared; rewrite %s", sql, res.SQL)
			continue
		}
		if len(p.OIDs) == 0 || len(p.Values) != len(p.OIDs) {
			t.Errorf("%s: prepared with %d types and %d values: %s", sql, len(p.OIDs), len(p.Values), p.SQL)
		}
		for _, want := range inline[sql] {
			if !strings.Contains(p.SQL, want) {
				t.Errorf("%s: prepared as %s, without %q", sql, p.SQL, want)
			}
		}
		name := fmt.Sprintf("p%d", i)
		if _, err := conn.Prepare(ctx, name, p.SQL, p.OIDs); err != nil {
			t.Errorf("%s: prepare %s: %v", sql, p.SQL, err)
			continue
		}
		// Custom plans first, then a generic one (forced, as PostgreSQL may
		// keep choosing custom plans for these).
		for i := 0; i < 4; i++ {
			if i == 2 {
				if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan").ReadAll(); err != nil {
					t.Fatal(err)
				}
			}
			want := inTx(ctx, conn, func() string { return simpleOn(ctx, conn, res.SQL) })
			got := inTx(ctx, conn, func() string { return preparedOn(ctx, conn, name, p.Values) })
			if got != want {
				t.Errorf("%s (execution %d)\nsimple:   %s\n  -> %s\nprepared: %s %q\n  -> %s", sql, i+1, res.SQL, want, p.SQL, p.Values, got)
				break
			}
		}
		if _, err := conn.Exec(ctx, "RESET plan_cache_mode; DEALLOCATE "+name).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	for _, sql := range notPrepared {
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: set}, opts)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if res.Template == nil {
			continue // nothing to prepare from
		}
		if p, ok := res.Template.Prepare(sql, res.Literals); ok {
			t.Errorf("%s: prepared as %s", sql, p.SQL)
		}
	}
}

// inTx runs f in a transaction it rolls back, so writes leave the table as
// it was for the next run.
func inTx(ctx context.Context, conn *pgconn.PgConn, f func() string) string {
	if _, err := conn.Exec(ctx, "BEGIN").ReadAll(); err != nil {
		return "begin: " + err.Error()
	}
	out := f()
	if _, err := conn.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		return "rollback: " + err.Error()
	}
	return out
}

// simpleOn and preparedOn describe a statement's answer as text: columns
// (name, type, origin, typmod), rows and command tag, or the SQLSTATE.
func simpleOn(ctx context.Context, conn *pgconn.PgConn, sql string) string {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return describeErr(err)
	}
	r := results[len(results)-1]
	return describeResult(r.FieldDescriptions, r.Rows, r.CommandTag.String())
}

func preparedOn(ctx context.Context, conn *pgconn.PgConn, name string, values [][]byte) string {
	r := conn.ExecPrepared(ctx, name, values, nil, nil).Read()
	if r.Err != nil {
		return describeErr(r.Err)
	}
	return describeResult(r.FieldDescriptions, r.Rows, r.CommandTag.String())
}

func describeErr(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "SQLSTATE " + pe.Code + ": " + pe.Message
	}
	return "error: " + err.Error()
}

func describeResult(fields []pgconn.FieldDescription, rows [][][]byte, tag string) string {
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%s:%d:%d.%d:%d ", f.Name, f.DataTypeOID, f.TableOID, f.TableAttributeNumber, f.TypeModifier)
	}
	for _, row := range rows {
		b.WriteString("|")
		for _, v := range row {
			if v == nil {
				b.WriteString(" NULL")
			} else {
				fmt.Fprintf(&b, " %s", v)
			}
		}
	}
	return b.String() + " " + tag
}
