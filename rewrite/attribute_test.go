package rewrite

import (
	"errors"
	"strings"
	"testing"
)

// TestAttributeNotation: x.f and (e).f that PostgreSQL would read as the
// function call f(x) never pass (attribute.go); columns, fields and
// whole-row references do.
func TestAttributeNotation(t *testing.T) {
	cat := testCatalog(t)
	opts := testOptions()
	sets := scenarios()
	refused := []string{
		// A single protected table is written inline: f would get its raw row.
		"SELECT customers.to_jsonb FROM customers",
		"SELECT c.to_jsonb ->> 'ssn' AS ssn FROM customers c WHERE c.id = 1",
		"SELECT c.row_to_json FROM customers c",
		"SELECT c.quote_literal, c.to_json FROM customers c",
		"SELECT public.customers.to_jsonb FROM customers",
		"SELECT public.customers.to_jsonb FROM public.customers",
		// Functions outside the allow-list, and in quals, where the fence
		// rule would not see the call.
		"SELECT c.pg_column_size, c.record_out FROM customers c",
		"SELECT id FROM customers c WHERE c.leak",
		"SELECT id FROM customers c ORDER BY c.md5",
		// Parenthesized, and t.* as its argument.
		"SELECT (c).to_jsonb FROM customers c",
		"SELECT (c.*).to_jsonb FROM customers c",
		"SELECT (customers).row_to_json FROM customers",
		// Through joins, subqueries, CTEs, VALUES, LATERAL and unprotected tables.
		"SELECT c.to_jsonb FROM customers c JOIN accounts a ON a.customer_id = c.id",
		"SELECT s.to_jsonb FROM (SELECT * FROM customers) s",
		"SELECT s.to_jsonb FROM (SELECT id, ssn FROM customers) s",
		"SELECT s.ssn FROM (SELECT id, ssn AS s FROM customers) s",
		"SELECT s.to_jsonb FROM (SELECT id FROM customers UNION SELECT id FROM accounts) s",
		"WITH x AS (SELECT * FROM customers) SELECT x.to_jsonb FROM x",
		"WITH x(a, b) AS (SELECT id, ssn FROM customers) SELECT x.ssn FROM x",
		"WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT r.to_jsonb FROM r",
		"SELECT v.to_jsonb FROM (VALUES (1, 'a')) v",
		"SELECT j.to_jsonb FROM (customers c JOIN accounts a ON a.customer_id = c.id) j",
		"SELECT u.to_jsonb FROM customers c JOIN accounts a USING (id) AS u",
		"SELECT l.to_jsonb FROM customers c, LATERAL (SELECT c.ssn) l",
		"SELECT c.to_jsonb FROM countries c",
		"SELECT f.to_jsonb FROM jsonb_to_record('{}') AS f(a int, b text)",
		// Column aliases rename: ssn is no longer a column of x.
		"SELECT x.ssn FROM customers AS x(i, n, e, s)",
		// Writes: RETURNING, SET values, ON CONFLICT's excluded.
		"UPDATE accounts a SET balance = balance WHERE a.customer_id = 1 RETURNING a.to_jsonb",
		"DELETE FROM accounts a WHERE a.customer_id = 1 RETURNING a.row_to_json",
		"INSERT INTO accounts (id, customer_id) VALUES (9, 1) ON CONFLICT (id) DO UPDATE SET iban = excluded.to_jsonb::text",
		"COPY (SELECT c.to_jsonb FROM customers c) TO STDOUT",
		// Items whose columns the rewriter does not know: refused when a
		// function of that name exists.
		"SELECT g.leak FROM generate_series(1, 3) g",
		"SELECT g.to_jsonb FROM unnest(ARRAY['a']) g",
		"SELECT t.to_jsonb FROM unnest(ARRAY['a']) WITH ORDINALITY AS t(name, n)",
		"SELECT (x).to_jsonb FROM (SELECT 1 AS x) s",
		"SELECT (ROW(1, 2)).row_to_json",
		"SELECT (c.ssn).upper FROM customers c",
	}
	for _, sql := range refused {
		res, err := RewriteSQL(sql, cat, Session{}, &setSource{set: sets["dana"]}, opts)
		var re *Error
		if !errors.As(err, &re) || re.Code != codeUndefinedColumn {
			t.Errorf("%s\n  want SQLSTATE 42703, got %v (SQL %q)", sql, err, res.SQL)
		}
	}
	allowed := []string{
		"SELECT c.id, c.ssn, customers.name FROM customers, customers c",
		"SELECT public.customers.ssn FROM customers",
		"SELECT c.xmin FROM countries c",
		"SELECT (c).ssn, (c).id FROM customers c",
		"SELECT (c.*).ssn FROM customers c",
		"SELECT (c).* FROM customers c",
		"SELECT c.* FROM customers c",
		"SELECT to_jsonb(c), row_to_json(c.*) FROM customers c",
		"SELECT s.id, s.ssn, s.x, s.upper, s.int4, s.lower, s.case FROM (SELECT id, ssn, 1 AS x, upper(name), 2::int, lower(name)::text, CASE WHEN true THEN 1 END FROM customers) s",
		"SELECT s.a, s.b FROM (SELECT id, ssn FROM customers) s(a, b)",
		"SELECT s.name FROM (SELECT * FROM customers) s",
		"SELECT s.id FROM (SELECT id FROM customers UNION SELECT id FROM accounts) s",
		"WITH x AS (SELECT * FROM customers) SELECT x.name FROM x",
		"WITH x(a, b) AS (SELECT id, ssn FROM customers) SELECT x.a, x.b FROM x",
		"WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT r.n + 1 FROM r WHERE r.n < 3) SELECT r.n FROM r",
		"SELECT v.column1, v.column2 FROM (VALUES (1, 'a')) v",
		"SELECT v.name FROM (VALUES (1, 'a')) v(id, name)",
		"SELECT j.name, j.iban FROM (customers c JOIN accounts a ON a.customer_id = c.id) j",
		"SELECT u.id FROM customers c JOIN accounts a USING (id) AS u",
		"SELECT f.a, f.b FROM jsonb_to_record('{}') AS f(a int, b text)",
		"SELECT x.i, x.s, x.phone FROM customers AS x(i, n, e, s)",
		"SELECT s.current_date, s.coalesce, s.exists FROM (SELECT CURRENT_DATE, coalesce(1, 2), EXISTS (SELECT 1)) s",
		"UPDATE accounts a SET balance = a.balance WHERE a.customer_id = 1 RETURNING a.id",
		"INSERT INTO accounts (id, customer_id) VALUES (9, 1) ON CONFLICT (id) DO UPDATE SET iban = excluded.iban",
		// Unknown columns, but no function of that name to call.
		"SELECT g.n FROM generate_series(1, 3) g(n)",
		"SELECT t.name, t.n FROM unnest(ARRAY['a']) WITH ORDINALITY AS t(name, n)",
		"SELECT s.name FROM (SELECT (SELECT 'x')) AS s(name)",
		"SELECT j.key, j.value FROM jsonb_each('{}') j",
		"SELECT (k.keys).x, (k.keys).n FROM (SELECT information_schema._pg_expandarray(ARRAY[1]) AS keys) k",
		"SELECT (x).f1 FROM (SELECT ROW(1, 2) AS x) s",
	}
	for _, sql := range allowed {
		if _, err := RewriteSQL(sql, cat, Session{}, &setSource{set: sets["dana"]}, opts); err != nil {
			var re *Error
			if errors.As(err, &re) && re.Code == codeUndefinedColumn {
				t.Errorf("%s\n  refused: %v", sql, err)
			}
		}
	}
}

// TestAttributeNotationMessage: the refusal says what PostgreSQL would
// have done and how to write the call.
func TestAttributeNotationMessage(t *testing.T) {
	_, err := RewriteSQL("SELECT c.to_jsonb FROM customers c", testCatalog(t), Session{}, &setSource{set: scenarios()["dana"]}, testOptions())
	if err == nil || !strings.Contains(err.Error(), "column c.to_jsonb does not exist") || !strings.Contains(err.Error(), "to_jsonb(c)") {
		t.Fatalf("got %v", err)
	}
}
