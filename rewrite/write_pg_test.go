package rewrite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/internal/pgtest"
)

// TestWritesOnPostgres runs rewritten writes on a real PostgreSQL with the
// store's mask and write-check migrations: a caller whose grants cover the
// rows with owner = 'alice' can change only those, cannot create or move a
// row outside them (42501, nothing written), and sees RETURNING masked.
func TestWritesOnPostgres(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	for _, m := range []string{"0002_masks.sql", "0003_write_checks.sql"} {
		b, err := os.ReadFile(filepath.Join("..", "policy", "store", "migrations", m))
		if err != nil {
			t.Fatal(err)
		}
		c.Exec(t, string(b))
	}
	c.Exec(t, `
		CREATE TABLE public.docs (
			id     integer PRIMARY KEY,
			owner  text NOT NULL,
			title  varchar(10),
			secret text,
			amount numeric(8,2) NOT NULL DEFAULT 0
		);
		INSERT INTO public.docs VALUES
			(1, 'alice', 'a1', 's1', 10), (2, 'bob', 'b2', 's2', 20),
			(3, 'alice', 'a3', 's3', 30), (4, 'bob', 'b4', 's4', 40);
		CREATE TABLE public.staging (id integer, owner text)`)

	cat, err := NewCatalogBuilder().
		Table("public.docs", "id integer", "owner text", "title character varying(10)", "secret text", "amount numeric(8,2)").
		Table("public.staging", "id integer", "owner text").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	own := grant.Compare{Op: grant.Eq, Left: grant.Column{Name: "owner"}, Right: grant.Literal{V: "alice"}}
	set := &grant.Set{Version: 1, Relations: map[string]*grant.Relation{
		"public.docs": {
			Name:    "public.docs",
			Allowed: map[grant.Action]bool{grant.Select: true, grant.Insert: true, grant.Update: true, grant.Delete: true},
			Filter: map[grant.Action]grant.Expr{
				grant.Select: own, grant.Insert: own, grant.Delete: own,
				grant.Update: grant.And{Terms: []grant.Expr{own, grant.Compare{Op: grant.Ge, Left: grant.Column{Name: "amount"}, Right: grant.Literal{V: "0", Type: "numeric"}}}},
			},
			Masks:    map[string]grant.Mask{"secret": {Kind: grant.MaskRedact}},
			Policies: []string{"owner-writes"},
		},
		"public.staging": {Name: "public.staging", Allowed: map[grant.Action]bool{grant.Select: true}, Filter: map[grant.Action]grant.Expr{grant.Select: grant.True}},
	}}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	rewritten := func(t *testing.T, sql string) string {
		t.Helper()
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: set}, nil)
		if err != nil {
			t.Fatalf("rewrite %q: %v", sql, err)
		}
		return res.SQL
	}
	exec := func(t *testing.T, sql string, args ...any) (int64, error) {
		t.Helper()
		tag, err := conn.Exec(ctx, rewritten(t, sql), args...)
		return tag.RowsAffected(), err
	}
	ok := func(t *testing.T, sql string, want int64, args ...any) {
		t.Helper()
		n, err := exec(t, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if n != want {
			t.Fatalf("%s: %d rows, want %d", sql, n, want)
		}
	}
	fails := func(t *testing.T, sql, code string, args ...any) {
		t.Helper()
		_, err := exec(t, sql, args...)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code {
			t.Fatalf("%s: want SQLSTATE %s, got %v", sql, code, err)
		}
	}
	// state is the whole table, read directly (not through the rewriter).
	state := func(t *testing.T) string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT id || ':' || owner || ':' || coalesce(title, '-') || ':' || amount FROM public.docs ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	unchanged := func(t *testing.T, before string) {
		t.Helper()
		if after := state(t); after != before {
			t.Fatalf("table changed by a refused statement:\nbefore %s\nafter  %s", before, after)
		}
	}

	t.Run("update reaches own rows only", func(t *testing.T) {
		ok(t, "UPDATE docs SET title = 'new'", 2)
		if got, want := state(t), "1:alice:new:10.00 2:bob:b2:20.00 3:alice:new:30.00 4:bob:b4:40.00"; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
		ok(t, "UPDATE docs SET title = 'x' WHERE id = 2", 0)
		ok(t, "UPDATE docs SET owner = 'bob' WHERE id = 999", 0) // no row, no check
	})
	t.Run("update moving a row out fails and changes nothing", func(t *testing.T) {
		before := state(t)
		fails(t, "UPDATE docs SET owner = 'bob' WHERE id = 1", "42501")
		fails(t, "UPDATE docs SET title = 'z', owner = $1", "42501", "bob")
		fails(t, "UPDATE docs SET amount = amount - 100 WHERE id = 3", "42501")
		fails(t, "UPDATE docs SET owner = CASE WHEN random() < 2 THEN 'bob' END WHERE id = 1", "42501")
		fails(t, "UPDATE docs SET (owner, title) = (NULL, 'n') WHERE id = 1", "42501")
		unchanged(t, before)
		ok(t, "UPDATE docs SET amount = amount - 5, owner = 'alice' WHERE id = 1", 1)
	})
	t.Run("new values keep PostgreSQL's conversions", func(t *testing.T) {
		before := state(t)
		fails(t, "UPDATE docs SET title = 'much too long title' WHERE id = 1", "22001")
		fails(t, "INSERT INTO docs (id, owner, title) VALUES (20, 'alice', 'much too long title')", "22001")
		unchanged(t, before)
		// amount numeric(8,2): -0.001 is stored as 0.00, which passes amount >= 0.
		ok(t, "UPDATE docs SET amount = -0.001 WHERE id = 3", 1)
		ok(t, "UPDATE docs SET amount = 30 WHERE id = 3", 1)
	})
	t.Run("insert outside scope fails and inserts nothing", func(t *testing.T) {
		before := state(t)
		fails(t, "INSERT INTO docs (id, owner) VALUES (10, 'bob')", "42501")
		fails(t, "INSERT INTO docs (id, owner) VALUES (11, 'alice'), (12, 'bob')", "42501")
		fails(t, "INSERT INTO docs (id, owner) VALUES ($1, $2)", "42501", 13, "bob")
		fails(t, "INSERT INTO docs VALUES (14, NULL)", "42501")
		c.Exec(t, "INSERT INTO public.staging VALUES (15, 'alice'), (16, 'bob')")
		fails(t, "INSERT INTO docs (id, owner) SELECT id, owner FROM staging", "42501")
		unchanged(t, before)
		ok(t, "INSERT INTO docs (id, owner) SELECT id, owner FROM staging WHERE owner = 'alice'", 1)
		ok(t, "INSERT INTO docs (id, owner, title) VALUES (17, 'alice', 't'), (18, 'alice', NULL)", 2)
		ok(t, "INSERT INTO docs (id, owner, title) VALUES ($1, $2, DEFAULT)", 1, 19, "alice")
	})
	t.Run("on conflict", func(t *testing.T) {
		before := state(t)
		// Bob's row 2 conflicts: it is not alice's to update, so nothing happens.
		ok(t, "INSERT INTO docs (id, owner, title) VALUES (2, 'alice', 'steal') ON CONFLICT (id) DO UPDATE SET title = excluded.title", 0)
		ok(t, "INSERT INTO docs (id, owner) VALUES (1, 'alice') ON CONFLICT (id) DO NOTHING", 0)
		unchanged(t, before)
		fails(t, "INSERT INTO docs (id, owner) VALUES (1, 'alice') ON CONFLICT (id) DO UPDATE SET owner = 'bob'", "42501")
		unchanged(t, before)
		ok(t, "INSERT INTO docs AS d (id, owner, amount) VALUES (1, 'alice', 1) ON CONFLICT (id) DO UPDATE SET amount = d.amount + excluded.amount", 1)
	})
	t.Run("a leaky condition never sees rows outside the filter", func(t *testing.T) {
		// Cheaper than the filter, so the planner would run it first if
		// the condition were a plain conjunct (it does: measured on 15).
		c.Exec(t, `
			CREATE TABLE public.seen (v text);
			CREATE FUNCTION public.leak(v text) RETURNS boolean LANGUAGE plpgsql VOLATILE COST 0.0001 AS
			$$ BEGIN INSERT INTO public.seen VALUES (v); RETURN true; END $$`)
		leakCat, err := NewCatalogBuilder().
			Table("public.docs", "id integer", "owner text", "title character varying(10)", "secret text", "amount numeric(8,2)").
			Function(&Function{Schema: "public", Name: "leak", NArgs: 1, Volatility: Volatile, Kind: KindFunction}).
			Build()
		if err != nil {
			t.Fatal(err)
		}
		opts := &Options{Functions: DefaultFunctions()}
		opts.Functions["public.leak"] = true
		for _, sql := range []string{
			"UPDATE docs SET amount = amount WHERE leak(title)",
			"DELETE FROM docs WHERE leak(title) AND id < 0",
		} {
			res, err := RewriteSQL(sql, leakCat, Session{}, &setSource{set: set}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, res.SQL); err != nil {
				t.Fatalf("%s: %v", res.SQL, err)
			}
		}
		var leaked int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM public.seen WHERE v IN ('b2', 'b4')").Scan(&leaked); err != nil || leaked != 0 {
			t.Fatalf("the condition saw %d rows of other owners (%v)", leaked, err)
		}
	})
	t.Run("returning is masked", func(t *testing.T) {
		var id int
		var secret, title string
		err := conn.QueryRow(ctx, rewritten(t, "UPDATE docs SET title = 'ret' WHERE id = 1 RETURNING *")).
			Scan(&id, new(string), &title, &secret, new(any))
		if err != nil {
			t.Fatal(err)
		}
		if id != 1 || title != "ret" || secret != "***" {
			t.Fatalf("RETURNING * gave id %d title %q secret %q", id, title, secret)
		}
		if err := conn.QueryRow(ctx, rewritten(t, "INSERT INTO docs (id, owner, secret) VALUES (30, 'alice', 'raw') RETURNING secret")).Scan(&secret); err != nil || secret != "***" {
			t.Fatalf("INSERT RETURNING secret gave %q, %v", secret, err)
		}
		if _, err := RewriteSQL("UPDATE docs SET title = 'x' WHERE secret = 's1'", cat, Session{}, &setSource{set: set}, nil); err == nil {
			t.Fatal("a WHERE on a masked column must be refused")
		}
	})
	t.Run("copy from", func(t *testing.T) {
		before := state(t)
		sql := rewritten(t, "COPY docs (id, owner) FROM STDIN")
		if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("40\talice\n41\tbob\n"), sql); err == nil {
			t.Fatal("COPY of a bob row must fail")
		} else if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "42501" {
			t.Fatalf("COPY: want 42501, got %v", err)
		}
		unchanged(t, before)
		tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("40\talice\n41\talice\n"), sql)
		if err != nil || tag.RowsAffected() != 2 {
			t.Fatalf("COPY of alice rows: %v %v", tag, err)
		}
	})
	t.Run("delete reaches own rows only", func(t *testing.T) {
		ok(t, "WITH d AS (DELETE FROM docs WHERE id = 2 RETURNING id) SELECT * FROM d", 0)
		var bob int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM public.docs WHERE owner = 'bob'").Scan(&bob); err != nil || bob != 2 {
			t.Fatalf("bob rows before DELETE: %d, %v", bob, err)
		}
		n, err := exec(t, "DELETE FROM docs")
		if err != nil || n == 0 {
			t.Fatalf("DELETE: %d rows, %v", n, err)
		}
		if got := state(t); got != "2:bob:b2:20.00 4:bob:b4:40.00" {
			t.Fatalf("after DELETE: %s", got)
		}
	})
}
