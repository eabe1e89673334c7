package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-proxy/mandate/rewrite"
)

// shadowDDL gives schema shadow a function or operator of every name the
// corpus of TestQualifiedNamesKeepResults calls, on an enum no argument of
// it reaches: each is then written qualified, and PostgreSQL's pick must
// stay what it was.
const shadowDDL = `CREATE SCHEMA shadow;
CREATE TYPE shadow.e AS ENUM ('x');
CREATE FUNCTION shadow.b(shadow.e, shadow.e) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION shadow.u(shadow.e) RETURNS shadow.e LANGUAGE sql AS 'SELECT $1';
DO $$
DECLARE op text; f text;
BEGIN
  FOREACH op IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>=', '+', '-', '*', '/', '%', '^', '||',
      '~~', '~~*', '!~~', '!~~*', '~', '!~', '@>', '->', '->>'] LOOP
    EXECUTE format('CREATE OPERATOR shadow.%s (LEFTARG = shadow.e, RIGHTARG = shadow.e, FUNCTION = shadow.b)', op);
  END LOOP;
  FOREACH op IN ARRAY ARRAY['-', '|/', '@'] LOOP
    EXECUTE format('CREATE OPERATOR shadow.%s (RIGHTARG = shadow.e, FUNCTION = shadow.u)', op);
  END LOOP;
  FOREACH f IN ARRAY ARRAY['lower', 'upper', 'length', 'substring', 'position', 'overlay', 'date_part',
      'extract', 'timezone', 'count', 'sum', 'max', 'min', 'string_agg', 'row_number', 'rank',
      'generate_series', 'now', 'abs', 'round', 'similar_to_escape', 'like_escape', 'btrim'] LOOP
    EXECUTE format('CREATE FUNCTION shadow.%I(shadow.e) RETURNS shadow.e LANGUAGE sql AS ''SELECT $1''', f);
  END LOOP;
END $$`

// TestQualifiedNamesKeepResults: where another schema has a function or
// operator of the same name, mandate writes the one it resolved
// schema-qualified (pg_catalog.lower(x), a OPERATOR(pg_catalog.=) b), and
// every query of the corpus returns through mandate the rows, order and
// column names it returns directly: the qualified form binds, names and
// resolves as the text the client wrote.
func TestQualifiedNamesKeepResults(t *testing.T) {
	w := startBank(t)
	w.migrate(t, shadowDDL)
	alice := w.connect(t, "alice")
	corpus := []string{
		"SELECT 1 + 2 * 3 = 7 AS a, (1 + 2) * 3 AS b, 2 ^ 3 ^ 2 AS c, - 2 + 3 AS d, |/ 16.0 AS e, @ -5 AS f, 10 % 4 * 2 AS g, 10 - 2 - 3 AS h",
		"SELECT i, s, i * 2 + 1 > 3 AND NOT s = 'cd' AS x FROM (VALUES (1, 'Ab'), (2, 'cd'), (3, NULL)) v(i, s) ORDER BY i",
		"SELECT s, s LIKE 'A%' AS a, s NOT LIKE '%d' AS b, s ILIKE 'ab' AS c, s NOT ILIKE 'C_' AS d, s LIKE 'A!%' ESCAPE '!' AS e, s SIMILAR TO '(A|c)%' AS f, s NOT SIMILAR TO 'c%' AS g, s ~ '^A' AS h, s !~ 'd$' AS k, (s LIKE 'A%') = true AS l FROM (VALUES ('Ab'), ('cd'), ('A%')) v(s) ORDER BY s",
		"SELECT i, i = ANY (ARRAY[1, 3]) AS a, i < ALL (ARRAY[2, 3]) AS b, i IN (SELECT 1 UNION SELECT 2) AS c, i NOT IN (SELECT 2) AS d, i > ANY (SELECT 1) AS e, (i, 1) = (SELECT 1, 1) AS f FROM (VALUES (1), (2), (3)) v(i) ORDER BY i",
		"SELECT ROW(1, 'a') < ROW(1, 'b') AS a, (1, 2) <= (1, 2) AS b, (1, 2) <> (2, 1) AS c",
		"SELECT i FROM (VALUES (2), (1), (3)) v(i) ORDER BY i USING >",
		"SELECT s FROM (VALUES ('b'), ('a'), ('c')) v(s) ORDER BY 1 USING <",
		"SELECT substring('hello' FROM 2 FOR 3) AS a, substring('hello', 2) AS b, position('l' IN 'hello') AS c, overlay('hello' PLACING 'XX' FROM 2 FOR 2) AS d, trim(both 'x' FROM 'xhix') AS e, extract(year FROM date '2024-05-06') AS f, date_part('month', date '2024-05-06') AS g, lower('AbC') AS h, upper('x') || length('abc') AS k",
		"SELECT count(*) AS a, sum(i) FILTER (WHERE i > 1) AS b, string_agg(s, ',' ORDER BY s DESC) AS c, max(i) AS d, min(s) AS e FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) v(i, s)",
		"SELECT i, row_number() OVER (ORDER BY i DESC) AS r, rank() OVER w AS k, sum(i) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s FROM (VALUES (1), (2), (2)) v(i) WINDOW w AS (ORDER BY i) ORDER BY i, r",
		"SELECT * FROM generate_series(1, 3)",
		"SELECT g FROM generate_series(1, 5) g WHERE g % 2 = 1 ORDER BY g",
		"SELECT lower('A'), upper('b'), abs(-1), round(2.5)",
		"SELECT CASE WHEN 1 + 1 = 2 THEN 'y' END AS a, NULLIF(1 + 1, 2) AS b, COALESCE(NULL, 1) + 1 AS c",
		"SELECT (1 = 1) IS TRUE AS a, 1 + 1 IS NULL AS b, (1 < 2) = (2 < 3) AS c, NOT 1 = 2 AS d, (1 + 1)::text || 'x' AS e, -(1 + 2) AS f, 2 - -1 AS g, 1 < 2 IS NOT FALSE AS h",
		"SELECT timezone('UTC', timestamptz '2024-01-01 00:00+00') = timestamp '2024-01-01' AS a, now() - now() = interval '0' AS b",
		`SELECT '{"a": {"b": 1}}'::jsonb -> 'a' ->> 'b' = '1' AS a, '{1,2}'::int[] @> '{1}' AS b, ARRAY[1] || 2 AS c`,
		"SELECT 1 AS x WHERE 2 BETWEEN 1 + 0 AND 3 AND 'a' IN ('a', 'b') AND 1 IS DISTINCT FROM 1 + 1",
		"SELECT i, i BETWEEN 1 AND 2 AS a, i NOT BETWEEN 1 AND 2 AS b, i BETWEEN SYMMETRIC 3 AND 2 AS c, i NOT BETWEEN SYMMETRIC 3 AND 2 AS d, NOT i BETWEEN 1 AND 2 AS e, (i BETWEEN 1 AND 2) = (i > 1) AS f, i BETWEEN 1 AND 2 IS TRUE AS g FROM (VALUES (1), (2), (3), (NULL)) v(i) ORDER BY i",
		"SELECT s FROM (VALUES ('a'), ('b'), ('c')) v(s) WHERE s BETWEEN 'a' AND 'b' OR s NOT BETWEEN 'a' AND 'b' AND s > 'b' ORDER BY s",
		"SELECT i, 2 BETWEEN i AND 3 AS a, 7 NOT BETWEEN SYMMETRIC i AND 5 AS b FROM (VALUES (1), (2), (3)) v(i) ORDER BY i",
	}
	cat, _ := w.enforcer.Catalogs.Current()
	for _, sql := range corpus {
		// The check cannot pass vacuously: every query has a name the
		// shadow schema has too, so mandate writes it out qualified.
		res, err := rewrite.RewriteSQL(sql, cat, rewrite.Session{}, nil, nil)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		if got := res.Statements[0].SQL; !strings.Contains(got, "pg_catalog.") {
			t.Errorf("%s: forwarded with nothing qualified: %s", sql, got)
		}
		direct, err := orderedRows(t, w.owner, sql)
		if err != nil {
			t.Errorf("%s directly: %v", sql, err)
			continue
		}
		// Both protocols: a simple query's literals make it a template
		// sent as a prepared statement (simpleprep.go).
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			if got, err := orderedRows(t, alice, sql, mode); err != nil {
				t.Errorf("%s through mandate (%v): %v", sql, mode, err)
			} else if got != direct {
				t.Errorf("%s (%v):\nthrough mandate %s\ndirectly        %s\nforwarded as %s", sql, mode, got, direct, res.Statements[0].SQL)
			}
		}
	}
}

// TestQualifiedNamesOutliveAStaleCatalog: an owner's overload created after
// mandate read the catalog (no event trigger here) is one mandate's model
// of overload resolution knows nothing of. PostgreSQL would pick it for
// these statements as written; written qualified, they run pg_catalog's,
// so the overload never runs and the rows are those the built-ins give.
func TestQualifiedNamesOutliveAStaleCatalog(t *testing.T) {
	w := startBank(t)
	// = and lower are already another schema's names when the catalog is
	// read: an extension's, say.
	w.migrate(t, `CREATE SCHEMA ext;
CREATE TYPE ext.e AS ENUM ('x');
CREATE FUNCTION ext.b(ext.e, ext.e) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR ext.= (LEFTARG = ext.e, RIGHTARG = ext.e, FUNCTION = ext.b);
CREATE OPERATOR ext.>= (LEFTARG = ext.e, RIGHTARG = ext.e, FUNCTION = ext.b);
CREATE OPERATOR ext.<= (LEFTARG = ext.e, RIGHTARG = ext.e, FUNCTION = ext.b);
CREATE FUNCTION ext.lower(ext.e) RETURNS text LANGUAGE sql AS 'SELECT ''x''';`)
	alice := w.connect(t, "alice")
	// Not through migrate: the catalog is not read again.
	if _, err := w.owner.Exec(ctxT(t), `
CREATE FUNCTION public.tv_eq(text, varchar) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = varchar, FUNCTION = public.tv_eq);
CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT ''owned''';
CREATE OPERATOR public.>= (LEFTARG = text, RIGHTARG = varchar, FUNCTION = public.tv_eq);
CREATE OPERATOR public.<= (LEFTARG = text, RIGHTARG = varchar, FUNCTION = public.tv_eq);`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ sql, want string }{
		{"SELECT count(*) FROM transactions WHERE merchant = 'no such merchant'::varchar", "0"},
		{"SELECT count(*) FROM transactions WHERE lower(merchant::varchar) = 'owned'", "0"},
		{"SELECT lower('ABC'::varchar)", "abc"},
		{"SELECT count(*) FROM transactions WHERE merchant BETWEEN 'y'::varchar AND 'x'::varchar", "0"},
		{"SELECT count(*) FROM transactions WHERE merchant BETWEEN SYMMETRIC 'y'::varchar AND 'y'::varchar", "0"},
		// BETWEEN's copies of its operand read what the original reads,
		// derived tables included (red team round 51a: the copy read
		// customers unfiltered, 12 rows where alice sees one), and a
		// pushed copy beside a fenced filter is written out too (it
		// crashed the rewriter).
		{"SELECT ((SELECT count(*) FROM customers) BETWEEN 1 AND 1)::text", "true"},
		{"SELECT ((SELECT count(*) FROM customers) BETWEEN SYMMETRIC 1 AND 1)::text", "true"},
		{"SELECT count(*) FROM transactions t WHERE id BETWEEN 1 AND 100 AND merchant ~ 'no such merchant'", "0"},
	} {
		if picked := picks(t, w, c.sql); len(picked) == 0 && !strings.Contains(c.sql, "customers") && !strings.Contains(c.sql, "~") {
			t.Errorf("%s: PostgreSQL runs nothing outside pg_catalog for it as written", c.sql)
		}
		var got string
		if err := alice.QueryRow(ctxT(t), c.sql).Scan(&got); err != nil {
			t.Errorf("%s: %v", c.sql, err)
		} else if got != c.want {
			t.Errorf("%s = %s, want %s: the owner's overload ran", c.sql, got, c.want)
		}
	}
}

// orderedRows is a query's column names and rows, in order, as text.
func orderedRows(t testing.TB, conn *pgx.Conn, sql string, args ...any) (string, error) {
	t.Helper()
	r, err := conn.Query(ctxT(t), sql, args...)
	if err != nil {
		return "", err
	}
	defer r.Close()
	var b strings.Builder
	for _, f := range r.FieldDescriptions() {
		b.WriteString(f.Name + " ")
	}
	for r.Next() {
		vals, err := r.Values()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| %v ", vals)
	}
	return b.String(), r.Err()
}

// TestPushedCopiesRunBuiltins (red team round 52b, medium): the copy of a
// condition mandate places beside a fenced filter runs on the rows the
// filter hides. Owner operators created after the catalog was read, with
// the persona's path putting public first, had run there on every hidden
// merchant: through a pushed IN list (whose = SQL cannot qualify) and a
// pushed <> (a name no other schema had when the catalog was read). The
// copies are now written pg_catalog's, the IN list as its comparisons.
func TestPushedCopiesRunBuiltins(t *testing.T) {
	w := startBank(t)
	alice := w.connect(t, "alice")
	visible := map[string]bool{}
	for _, m := range mustRows(t, alice, "SELECT DISTINCT merchant FROM transactions") {
		visible[m] = true
	}
	if _, err := w.owner.Exec(ctxT(t), `
CREATE TABLE public.seen (v text);
GRANT INSERT ON public.seen TO PUBLIC;
CREATE FUNCTION public.spy(text, text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
  'BEGIN INSERT INTO public.seen VALUES ($1); RETURN $1 OPERATOR(pg_catalog.=) $2; END';
CREATE FUNCTION public.spy_ne(text, text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS
  'BEGIN INSERT INTO public.seen VALUES ($1); RETURN $1 OPERATOR(pg_catalog.<>) $2; END';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.spy);
CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.spy_ne);`); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"SET search_path = public, pg_catalog", "SET enable_indexscan = off", "SET enable_bitmapscan = off"} {
		if _, err := alice.Exec(ctxT(t), set); err != nil {
			t.Fatalf("%s: %v", set, err)
		}
	}
	for _, sql := range []string{
		// ~ is not leakproof: the statement is fenced, the other
		// conjunct copied beside the filter.
		"SELECT count(*) FROM transactions WHERE merchant ~ 'zzz' AND merchant IN ('a', 'b')",
		"SELECT count(*) FROM transactions WHERE merchant ~ 'zzz' AND merchant <> 'a'",
	} {
		if _, err := alice.Exec(ctxT(t), sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	var hidden []string
	for _, v := range mustRows(t, w.owner, "SELECT DISTINCT v FROM public.seen") {
		if !visible[v] {
			hidden = append(hidden, v)
		}
	}
	if len(hidden) > 0 {
		t.Errorf("the owner's operators saw merchants alice may not see: %v", hidden)
	}
}

// TestFunctionColumnsNamedAsPostgresNamesThem (red team round 54b, high):
// a function in FROM with an OUT parameter names its column after it
// (json_array_elements_text's is value), so ts_stat.ts_stat over one
// aliased ts_stat is no column but the call ts_stat(text), which runs its
// argument as SQL; mandate had named the column after the alias and let
// the call through. A column mandate names itself is no proof against a
// call of that name either.
func TestFunctionColumnsNamedAsPostgresNamesThem(t *testing.T) {
	w := startBank(t)
	sam := w.connect(t, "sam")
	for _, sql := range []string{
		`SELECT ts_stat.ts_stat FROM json_array_elements_text('["select array_to_tsvector(array[ssn]) from public.customers"]') AS ts_stat`,
		`SELECT length.length FROM json_array_elements_text('["abc"]') AS length`,
		`SELECT length.length FROM generate_series(1, 2) AS length`,
	} {
		_, err := sam.Exec(ctxT(t), sql)
		if err := expectErr(err, stUndefinedColumn, codeInsufficientPriv); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		"SELECT g.g FROM generate_series(1, 2) AS g",
		"SELECT value FROM json_array_elements_text('[\"a\"]')",
		"SELECT s.x FROM generate_series(1, 2) AS s(x)",
		`SELECT s.value FROM json_array_elements_text('["x"]') AS s`,
	} {
		if _, err := sam.Exec(ctxT(t), sql); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	// Red team round 54a (high): value, taken for an outer int column,
	// is the function's text column, and an owner's =(text, int4) ran
	// for the IN list SQL cannot qualify.
	w.migrate(t, `CREATE FUNCTION public.ti(text, int4) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = int4, FUNCTION = public.ti);`)
	refusedOwnerCode(t, w, sam,
		`SELECT (SELECT 1 FROM json_array_elements_text('["x"]') AS s WHERE value IN (1, 2)) FROM pg_type AS q(value) LIMIT 1`,
		`SELECT (SELECT NULLIF(value, 1) FROM json_array_elements_text('["x"]') AS s) FROM pg_type AS q(value) LIMIT 1`)
	// Red team round 55a (high): md5(s) of a whole row s is the field
	// s.md5 when no md5 takes a row, here a row of pg_sequences, not text:
	// its columns are not x's one, and start_value is its bigint.
	w.migrate(t, `CREATE FUNCTION public.bt(int8, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR public.= (LEFTARG = int8, RIGHTARG = text, FUNCTION = public.bt);`)
	refusedOwnerCode(t, w, sam,
		`SELECT 1 FROM information_schema.sequences q WHERE (SELECT count(*) FROM (SELECT '(a,b,c,int8,1,1,9,1,f,1,1)'::pg_sequences AS md5) s, LATERAL md5(s) AS x WHERE start_value IN ('1'::text, '2'::text)) > 0`)
}
