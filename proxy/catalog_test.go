package proxy

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/rewrite"
)

// catalogDB creates a database owned by the app role with tables, views, a
// partitioned table, a materialized view, a sequence, and (as superuser,
// which LEAKPROOF needs) a leakproof function with an operator over it.
func catalogDB(t *testing.T) string {
	t.Helper()
	db := fmt.Sprintf("catalog_%d", time.Now().UnixNano())
	pg.Exec(t, "CREATE DATABASE "+db+" OWNER "+appRole)
	t.Cleanup(func() { _ = pg.ExecContext(context.Background(), "DROP DATABASE "+db+" WITH (FORCE)") })
	catalogExec(t, pg.DSN(appRole, db), `
CREATE SCHEMA "Sales";
CREATE TABLE public.accounts (id integer PRIMARY KEY, owner text, gone int, balance numeric(12,2),
  note character varying(20), tags text[], created timestamptz);
ALTER TABLE accounts DROP COLUMN gone;
CREATE TABLE "Sales"."Orders" ("Order Id" integer, amount numeric);
CREATE VIEW rich AS SELECT id, owner FROM accounts WHERE balance > 1000;
CREATE VIEW rich_orders AS SELECT r.id, o.amount FROM rich r JOIN "Sales"."Orders" o ON o."Order Id" = r.id;
CREATE TABLE events (id integer, at date) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n FROM accounts;
CREATE SEQUENCE ids;
INSERT INTO accounts VALUES (1, 'ann', 5000, 'x', '{a}', now()), (2, 'bob', 10, NULL, NULL, NULL);
INSERT INTO "Sales"."Orders" VALUES (1, 12.5);
INSERT INTO events VALUES (1, '2024-03-01');`)
	catalogExec(t, pg.DSN("postgres", db), `
CREATE FUNCTION public.same(integer, integer) RETURNS boolean LANGUAGE sql IMMUTABLE LEAKPROOF AS 'SELECT $1 = $2';
CREATE OPERATOR public.=== (FUNCTION = public.same, LEFTARG = integer, RIGHTARG = integer);`)
	return db
}

func catalogExec(t *testing.T, dsn, sql string) {
	t.Helper()
	conn := catalogConn(t, dsn)
	if _, err := conn.Exec(ctxT(t), sql).ReadAll(); err != nil {
		t.Fatal(err)
	}
}

func catalogConn(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestCatalogLoad(t *testing.T) {
	db := catalogDB(t)
	// A temp table of another session: listed so that session can resolve it.
	other := catalogConn(t, pg.DSN(appRole, db))
	if _, err := other.Exec(ctxT(t), "CREATE TEMP TABLE scratch (x integer)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	conn := catalogConn(t, pg.DSN(appRole, db))
	var cat *rewrite.Catalog
	for i := range 3 { // the first load also warms the backend's caches
		start := time.Now()
		var err error
		if cat, err = LoadCatalog(ctxT(t), conn); err != nil {
			t.Fatal(err)
		}
		t.Logf("load %d: %v (%d schemas, %d operators)", i+1, time.Since(start), len(cat.Schemas), len(cat.Operators))
	}
	if conn.TxStatus() != 'I' {
		t.Fatalf("connection left in transaction status %c", conn.TxStatus())
	}

	table := func(schema, name string) *rewrite.Table {
		t.Helper()
		s := cat.Schemas[schema]
		if s == nil || s.Tables[name] == nil {
			t.Fatalf("%s.%s not loaded", schema, name)
		}
		return s.Tables[name]
	}
	var cols []string
	for _, c := range table("public", "accounts").Columns {
		cols = append(cols, c.Name+" "+c.Type)
	}
	if want := []string{"id integer", "owner text", "balance numeric(12,2)", "note character varying(20)",
		"tags text[]", "created timestamp with time zone"}; !reflect.DeepEqual(cols, want) {
		t.Errorf("accounts columns %q, want %q", cols, want)
	}
	for _, tt := range []struct {
		schema, name string
		kind         rewrite.RelKind
		bases        []string
	}{
		{"public", "accounts", rewrite.KindTable, nil},
		{"Sales", "Orders", rewrite.KindTable, nil},
		{"public", "rich", rewrite.KindView, []string{"public.accounts"}},
		{"public", "rich_orders", rewrite.KindView, []string{"Sales.Orders", "public.accounts", "public.rich"}},
		{"public", "events", rewrite.KindPartitioned, []string{"public.events_2024"}},
		{"public", "events_2024", rewrite.KindTable, nil},
		{"public", "totals", rewrite.KindMatView, []string{"public.accounts"}},
		{"public", "ids", rewrite.KindSequence, nil},
		{"pg_catalog", "pg_class", rewrite.KindTable, nil},
		{"pg_catalog", "pg_tables", rewrite.KindView, nil},
		{"information_schema", "tables", rewrite.KindView, nil},
	} {
		tb := table(tt.schema, tt.name)
		if tb.Kind != tt.kind {
			t.Errorf("%s: kind %c, want %c", tb.QualifiedName(), tb.Kind, tt.kind)
		}
		if tt.bases != nil && !reflect.DeepEqual(tb.BaseTables, tt.bases) {
			t.Errorf("%s: base tables %q, want %q", tb.QualifiedName(), tb.BaseTables, tt.bases)
		}
	}
	var temp string
	for name, s := range cat.Schemas {
		if strings.HasPrefix(name, "pg_toast") {
			t.Errorf("TOAST schema %s loaded", name)
		}
		if strings.HasPrefix(name, "pg_temp_") && s.Tables["scratch"] != nil {
			temp = name
		}
	}
	if temp == "" {
		t.Error("the other session's temp table is missing")
	}

	fn := func(schema, name string) *rewrite.Function {
		t.Helper()
		fs := cat.Schemas[schema].Functions[name]
		if len(fs) == 0 {
			t.Fatalf("function %s.%s not loaded", schema, name)
		}
		return fs[0]
	}
	if f := fn("pg_catalog", "int4eq"); !f.Leakproof || f.NArgs != 2 || f.Volatility != rewrite.Immutable || f.Kind != rewrite.KindFunction {
		t.Errorf("int4eq = %+v", f)
	}
	if f := fn("pg_catalog", "numeric_gt"); f.Leakproof {
		t.Errorf("numeric_gt must not be leakproof: %+v", f)
	}
	if f := fn("pg_catalog", "random"); f.Volatility != rewrite.Volatile {
		t.Errorf("random = %+v", f)
	}
	if f := fn("pg_catalog", "row_number"); f.Kind != rewrite.KindWindow {
		t.Errorf("row_number = %+v", f)
	}
	if f := fn("public", "same"); !f.Leakproof || f.NArgs != 2 {
		t.Errorf("public.same = %+v", f)
	}

	type opKey struct{ schema, name, left, right string }
	loaded := map[opKey]bool{}
	for _, op := range cat.Operators {
		loaded[opKey{op.Schema, op.Name, op.Left, op.Right}] = op.Leakproof
	}
	for k, want := range map[opKey]bool{
		{"pg_catalog", "=", "int4", "int4"}:       true,
		{"pg_catalog", ">", "numeric", "numeric"}: false,
		{"pg_catalog", "-", "", "int4"}:           false,
		{"public", "===", "int4", "int4"}:         true,
	} {
		if got, ok := loaded[k]; !ok || got != want {
			t.Errorf("operator %v: leakproof %v (loaded %v), want %v", k, got, ok, want)
		}
	}

	// The rewriter's built-in PostgreSQL 15 list against the real thing. A
	// built-in marked leakproof that is not would drop a needed fence.
	builtin, err := rewrite.NewCatalogBuilder().Build()
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	for _, op := range builtin.Operators {
		got, ok := loaded[opKey{op.Schema, op.Name, op.Left, op.Right}]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s %s %s: not in PostgreSQL", op.Name, op.Left, op.Right))
		case got != op.Leakproof:
			diffs = append(diffs, fmt.Sprintf("%s %s %s: built-in leakproof=%v, PostgreSQL %v", op.Name, op.Left, op.Right, op.Leakproof, got))
			if op.Leakproof {
				t.Errorf("built-in list marks %s %s %s leakproof; PostgreSQL does not", op.Name, op.Left, op.Right)
			}
		}
	}
	sort.Strings(diffs)
	t.Logf("built-in operator list vs PostgreSQL: %d of %d differ\n%s", len(diffs), len(builtin.Operators), strings.Join(diffs, "\n"))
}

// TestCatalogRewriteRuns rewrites statements with the loaded catalog and
// runs the output on the database it was loaded from.
func TestCatalogRewriteRuns(t *testing.T) {
	db := catalogDB(t)
	conn := catalogConn(t, pg.DSN(appRole, db))
	if _, err := conn.Exec(ctxT(t), "CREATE TEMP TABLE scratch (x integer); INSERT INTO scratch VALUES (7)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Exec(ctxT(t), "SELECT pg_my_temp_schema()::regnamespace::text").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	sess := rewrite.Session{User: appRole, TempSchema: string(rows[0].Rows[0][0])}
	cat, err := LoadCatalog(ctxT(t), conn)
	if err != nil {
		t.Fatal(err)
	}
	// Allow everything, behind a filter on the first column and a mask.
	grants := rewrite.GrantFunc(func(names []string) (*grant.Set, error) {
		set := &grant.Set{Version: 1, Relations: map[string]*grant.Relation{}}
		for _, name := range names {
			schema, rel, _ := strings.Cut(name, ".")
			first := cat.Schemas[schema].Tables[rel].Columns[0].Name
			set.Relations[name] = &grant.Relation{
				Name:    name,
				Allowed: map[grant.Action]bool{grant.Select: true},
				Filter:  map[grant.Action]grant.Expr{grant.Select: grant.NotNull{Column: first}},
				Masks:   map[string]grant.Mask{"owner": {Kind: grant.MaskRedact}},
			}
		}
		return set, nil
	})
	for _, tt := range []struct {
		sql, want string // want: a fragment of the rewritten SQL
		rows      int
	}{
		{`SELECT a.owner, o.amount FROM accounts a JOIN "Sales"."Orders" o ON o."Order Id" = a.id WHERE a.balance > 10`, "FROM public.accounts _m", 1},
		{`SELECT c.oid, n.nspname, c.relname FROM pg_class c LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
		  WHERE c.relname OPERATOR(pg_catalog.~) '^(accounts)$' AND pg_table_is_visible(c.oid) ORDER BY 2, 3`, "FROM pg_catalog.pg_class _m1) c LEFT JOIN pg_catalog.pg_namespace n", 1},
		{"TABLE accounts", "'***'::text AS owner, accounts.balance, accounts.note, accounts.tags, accounts.created FROM public.accounts WHERE accounts.id IS NOT NULL", 2},
		{"SELECT * FROM rich_orders", "FROM public.rich_orders _m", 1},
		{"SELECT count(*) FROM events WHERE at > '2024-02-01'", "FROM public.events WHERE events.id IS NOT NULL AND at > '2024-02-01'", 1},
		{"SELECT table_name FROM information_schema.tables WHERE table_schema = 'Sales'", "FROM information_schema.tables", 1},
		{"SELECT x FROM scratch", "FROM pg_temp.scratch", 1},
		{"WITH a AS (SELECT id FROM accounts) SELECT * FROM a", "FROM a", 2},
	} {
		res, err := rewrite.RewriteSQL(tt.sql, cat, sess, grants, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.sql, err)
			continue
		}
		if !strings.Contains(res.SQL, tt.want) {
			t.Errorf("%s: rewritten to %s, want %q in it", tt.sql, res.SQL, tt.want)
		}
		out, err := conn.Exec(ctxT(t), res.SQL).ReadAll()
		if err != nil {
			t.Errorf("%s: rewritten SQL fails: %v\n%s", tt.sql, err, res.SQL)
			continue
		}
		if got := len(out[0].Rows); got != tt.rows {
			t.Errorf("%s: %d rows, want %d\n%s", tt.sql, got, tt.rows, res.SQL)
		}
	}
}

func TestCatalogCacheRefresh(t *testing.T) {
	db := catalogDB(t)
	cfg, err := pgconn.ParseConfig(pg.DSN(appRole, db))
	if err != nil {
		t.Fatal(err)
	}
	cache := NewCatalogCache(cfg, nil)
	t.Cleanup(cache.Close)
	if cat, v := cache.Current(); cat != nil || v != 0 {
		t.Fatal("catalog before the first load")
	}
	if err := cache.Refresh(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	cat, v1 := cache.Current()
	if cat == nil || v1 == 0 || cache.Version() != v1 {
		t.Fatalf("after refresh: %v %d", cat, v1)
	}
	catalogExec(t, pg.DSN(appRole, db), "CREATE TABLE later (id integer)")
	if err := cache.Refresh(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	cat, v2 := cache.Current()
	if v2 == v1 || cat.Schemas["public"].Tables["later"] == nil {
		t.Fatalf("refresh missed the new table (versions %d → %d)", v1, v2)
	}

	// A broken connection is replaced on the next reload.
	cache.mu.Lock()
	_ = cache.conn.Close(context.Background())
	cache.mu.Unlock()
	if err := cache.Refresh(ctxT(t)); err != nil {
		t.Fatalf("reload after losing the connection: %v", err)
	}

	// Run reloads in the background and stops with its context.
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan struct{})
	go func() { cache.Run(ctx, 10*time.Millisecond); close(done) }()
	before := cache.Version()
	deadline := time.Now().Add(10 * time.Second)
	for cache.Version() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if cache.Version() == before {
		t.Fatal("Run did not reload")
	}
}
