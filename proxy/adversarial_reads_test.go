package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/policy"
)

// Attack classes 1–5: reads. Oracles are the owner's queries with the
// persona's filter (SPEC §5) written by hand.

// stUndefinedColumn is PostgreSQL's undefined_column, which mandate also
// answers for x.f that PostgreSQL would run as the function call f(x).
const stUndefinedColumn = "42703"

const (
	aliceAccounts = "SELECT id FROM accounts WHERE customer_id = 1"
	aliceTx       = "SELECT id FROM transactions WHERE account_id IN (101, 102)"
	noRows        = "SELECT 1 WHERE false"
)

// ownerExec runs DDL or data changes directly as the table owner and
// reloads the proxy's catalog.
func ownerExec(t *testing.T, w *bankWorld, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		if _, err := w.owner.Exec(ctxT(t), sql); err != nil {
			t.Fatalf("owner: %s: %v", sql, err)
		}
	}
	if err := w.enforcer.Catalogs.Refresh(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// sameOrRefused expects the oracle's rows or a refusal (42501, 0A000),
// never anything else.
func sameOrRefused(name, persona, sql, oracle string) advCase {
	return custom(name, func(x *advCtx) error {
		conn, err := x.as(persona)
		if err != nil {
			return err
		}
		got, _, err := x.exec(persona, conn, sql)
		if st := sqlState(err); st == stDenied || st == stUnsupported {
			return nil
		}
		if want := x.oracleRows(oracle); err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			return fmt.Errorf("want the oracle's rows %q or a refusal, got %q, %v", want, got, err)
		}
		return nil
	})
}

// searchPathAfter runs setup as alice, one Query per element, whatever
// fails, then checks what "accounts" names: public.accounts when undone
// (PostgreSQL undid setup's SET search_path = shadow, public), else
// shadow.accounts, which alice is refused.
func searchPathAfter(x *advCtx, setup []string, undone bool) error {
	conn, err := x.as("alice")
	if err != nil {
		return err
	}
	for _, s := range setup {
		_, _, _ = x.exec("alice", conn, s)
	}
	got, _, err := x.exec("alice", conn, "SELECT id FROM accounts")
	if !undone {
		if sqlState(err) != stDenied {
			return fmt.Errorf("want shadow.accounts refused, got %q, %v", got, err)
		}
		return nil
	}
	if want := x.oracleRows(aliceAccounts); err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("got %q, %v; want %q", got, err, want)
	}
	return nil
}

// planCase runs an EXPLAIN and fails if the plan shows any of shows: the
// injected filter or counts of rows the filter removed reveal what the
// persona may not see.
func planCase(name, persona, sql string, shows ...string) advCase {
	return custom(name, func(x *advCtx) error {
		conn, err := x.as(persona)
		if err != nil {
			return err
		}
		got, _, err := x.exec(persona, conn, sql)
		if st := sqlState(err); st == stDenied || st == stUnsupported {
			return nil // refusing the EXPLAIN is safe
		}
		if err != nil {
			return fmt.Errorf("EXPLAIN failed: %v", err)
		}
		plan := strings.Join(got, "\n")
		// The statements EXPLAINed here have no WHERE of their own: any
		// filter or index condition in the plan is the injected policy.
		for _, s := range append([]string{"Filter", "Index Cond", "Rows Removed"}, shows...) {
			if strings.Contains(plan, s) {
				return fmt.Errorf("the plan shows %q:\n%s", s, plan)
			}
		}
		return nil
	})
}

func advNameResolution() advClass {
	return advClass{
		name: "1-names",
		prep: func(t *testing.T, w *bankWorld) {
			ownerExec(t, w,
				"CREATE SCHEMA shadow",
				"CREATE TABLE shadow.accounts (id bigint, customer_id bigint, iban text, balance numeric, opened_at timestamptz)",
				"INSERT INTO shadow.accounts VALUES (901, 2, 'SHADOW-IBAN-000001', 1, now())",
				"CREATE VIEW public.v_accounts AS SELECT * FROM accounts",
				"CREATE TABLE public.all_transactions (LIKE transactions)",
				"ALTER TABLE transactions INHERIT all_transactions",
				"CREATE TABLE public.accounts_archive () INHERITS (accounts)",
				"INSERT INTO accounts_archive VALUES (190, 2, 'ARCHIVE-FR-HIDDEN-0001', 777.77, now()), (191, 1, 'ARCHIVE-DE-ALICE-0002', 1.00, now())",
			)
		},
		cases: []advCase{
			same("names/unicode-escape", "alice", `SELECT id FROM U&"acc\006Funts"`, aliceAccounts),
			same("names/unicode-escape-uescape", "alice", `SELECT id FROM U&"acc!006Funts" UESCAPE '!'`, aliceAccounts),
			same("names/unicode-escape-schema", "alice", `SELECT id FROM U&"p\0075blic".U&"\0061ccounts"`, aliceAccounts),
			same("names/unquoted-upper-folds", "alice", "SELECT ID FROM ACCOUNTS", aliceAccounts),
			same("names/mixed-case-filter", "alice", "SELECT Id FROM Accounts WHERE Customer_ID = 2", noRows),
			refuse("names/quoted-upper-is-another-name", "alice", `SELECT id FROM "ACCOUNTS"`, stUndefined),
			same("names/quoted-lower", "alice", `SELECT id FROM "accounts"`, aliceAccounts),
			same("names/schema-qualified", "alice", "SELECT id FROM public.accounts", aliceAccounts),
			same("names/schema-quoted", "alice", `SELECT id FROM "public"."accounts"`, aliceAccounts),
			refuse("names/pg_catalog-qualified", "alice", "SELECT id FROM pg_catalog.accounts", stUndefined),
			refuse("names/pg_temp-qualified", "alice", "SELECT id FROM pg_temp.accounts", stUndefined),
			same("names/only", "alice", "SELECT id FROM ONLY accounts", "SELECT id FROM ONLY accounts WHERE customer_id = 1"),
			same("names/star-includes-children", "alice", "SELECT id FROM accounts *", aliceAccounts),
			same("names/inherited-rows-filtered", "alice", "SELECT iban FROM accounts", "SELECT iban FROM accounts WHERE customer_id = 1"),
			refuse("names/unprotected-child-table", "alice", "SELECT iban FROM accounts_archive", stDenied),
			refuse("names/unprotected-parent-table", "alice", "SELECT amount FROM all_transactions", stDenied),
			refuse("names/unprotected-parent-only", "alice", "SELECT amount FROM ONLY all_transactions", stDenied),
			refuse("names/view-over-protected", "alice", "SELECT iban FROM v_accounts", stDenied),
			refuse("names/unprotected-shadow-schema", "alice", "SELECT iban FROM shadow.accounts", stDenied),
			{name: "names/search-path-shadow-first", persona: "alice", setup: []string{"SET search_path = shadow, public"},
				sql: "SELECT iban FROM accounts", codes: []string{stDenied}},
			{name: "names/search-path-quoted", persona: "alice", setup: []string{`SET search_path = "shadow", "public"`},
				sql: "SELECT iban FROM accounts", codes: []string{stDenied}},
			{name: "names/search-path-pg_catalog-only", persona: "alice", setup: []string{"SET search_path = pg_catalog"},
				sql: "SELECT id FROM accounts", codes: []string{stUndefined}},
			{name: "names/search-path-pg_temp-first", persona: "alice", setup: []string{"SET search_path = pg_temp, public"},
				sql: "SELECT id FROM accounts", oracle: aliceAccounts},
			{name: "names/search-path-set-local-rolled-back", persona: "alice",
				setup: []string{"BEGIN", "SET LOCAL search_path = shadow, public", "ROLLBACK"},
				sql:   "SELECT id FROM accounts", oracle: aliceAccounts},
			{name: "names/search-path-rollback-to-savepoint", persona: "alice",
				setup: []string{"BEGIN", "SAVEPOINT s", "SET search_path = shadow, public", "ROLLBACK TO SAVEPOINT s"},
				sql:   "SELECT id FROM accounts", oracle: aliceAccounts, after: []string{"ROLLBACK"}},
			{name: "names/search-path-same-query", persona: "alice", sql: "SET search_path = shadow, public; SELECT iban FROM accounts",
				codes: []string{stDenied}, after: []string{"RESET search_path"}},
			custom("names/search-path-failed-implicit-tx", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				if _, _, err := x.exec("alice", conn, "SET search_path = shadow, public; SELECT 1/0"); sqlState(err) != "22012" {
					return fmt.Errorf("want division by zero, got %v", err)
				}
				// The failed implicit transaction undid the SET: accounts is public.accounts again.
				got, _, err := x.exec("alice", conn, "SELECT id FROM accounts")
				if want := x.oracleRows(aliceAccounts); err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
					return fmt.Errorf("got %q, %v; want %q", got, err, want)
				}
				return nil
			}),
			{name: "names/search-path-release-savepoint-keeps", persona: "alice",
				setup: []string{"BEGIN", "SAVEPOINT s", "SET search_path = shadow, public", "RELEASE SAVEPOINT s"},
				sql:   "SELECT iban FROM accounts", codes: []string{stDenied}, after: []string{"ROLLBACK"}},
			{name: "names/search-path-rollback-to-inner-savepoint", persona: "alice",
				setup: []string{"BEGIN", "SET search_path = shadow, public", "SAVEPOINT a", "SET search_path = public", "SAVEPOINT b",
					"SET search_path = pg_catalog", "ROLLBACK TO b"},
				sql: "SELECT id FROM accounts", oracle: aliceAccounts, after: []string{"ROLLBACK"}},
			{name: "names/search-path-rollback-to-outer-savepoint", persona: "alice",
				setup: []string{"BEGIN", "SET search_path = shadow, public", "SAVEPOINT a", "SET search_path = public", "SAVEPOINT b",
					"RELEASE b", "ROLLBACK TO a"},
				sql: "SELECT iban FROM accounts", codes: []string{stDenied}, after: []string{"ROLLBACK"}},
			{name: "names/search-path-committed-in-block", persona: "alice",
				setup: []string{"BEGIN", "SAVEPOINT s", "SET search_path = shadow, public", "RELEASE s", "COMMIT"},
				sql:   "SELECT iban FROM accounts", codes: []string{stDenied}, after: []string{"RESET search_path"}},
			{name: "names/search-path-set-local-released", persona: "alice",
				setup: []string{"BEGIN", "SAVEPOINT s", "SET LOCAL search_path = shadow, public", "RELEASE s", "COMMIT"},
				sql:   "SELECT id FROM accounts", oracle: aliceAccounts},
			{name: "names/search-path-set-local-outside-block", persona: "alice",
				setup: []string{"SET LOCAL search_path = shadow, public"},
				sql:   "SELECT id FROM accounts", oracle: aliceAccounts},
			// (after: a connection of their own, whatever the proxy makes of them)
			{name: "names/search-path-same-query-rolled-back", persona: "alice",
				sql:    "BEGIN; SET search_path = shadow, public; ROLLBACK; SELECT id FROM accounts",
				oracle: aliceAccounts, after: []string{"RESET search_path"}},
			{name: "names/search-path-same-query-local-ended", persona: "alice",
				sql:    "BEGIN; SET LOCAL search_path = shadow, public; COMMIT; SELECT id FROM accounts",
				oracle: aliceAccounts, after: []string{"RESET search_path"}},
			{name: "names/search-path-same-query-rollback-to", persona: "alice", setup: []string{"BEGIN"},
				sql:    "SAVEPOINT s; SET search_path = shadow, public; ROLLBACK TO s; SELECT id FROM accounts",
				oracle: aliceAccounts, after: []string{"ROLLBACK"}},
			{name: "names/search-path-same-query-reset", persona: "alice", setup: []string{"SET search_path = shadow, public"},
				sql: "RESET search_path; SELECT id FROM accounts", oracle: aliceAccounts},
			custom("names/search-path-failed-block-commit", func(x *advCtx) error {
				// COMMIT of a failed block rolls it back, SET included.
				return searchPathAfter(x, []string{"BEGIN", "SET search_path = shadow, public", "SELECT 1/0", "COMMIT"}, true)
			}),
			custom("names/search-path-failed-after-commit", func(x *advCtx) error {
				// The SET committed with the first implicit transaction; only the second failed.
				return searchPathAfter(x, []string{"SET search_path = shadow, public; COMMIT; SELECT 1/0"}, false)
			}),
			custom("names/search-path-refused-query", func(x *advCtx) error {
				// The refusal fails the query's implicit transaction like any error.
				return searchPathAfter(x, []string{"SET search_path = shadow, public; SELECT * FROM pg_catalog.pg_stats"}, true)
			}),
			custom("names/search-path-failed-extended-batch", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				// One Sync: one implicit transaction, rolled back by the error.
				b := &pgconn.Batch{}
				b.ExecParams("SET search_path = shadow, public", nil, nil, nil, nil)
				b.ExecParams("SELECT 1/0", nil, nil, nil, nil)
				if _, err := conn.PgConn().ExecBatch(ctxT(x.t), b).ReadAll(); sqlState(err) != "22012" {
					return fmt.Errorf("want division by zero, got %v", err)
				}
				got, _, err := x.exec("alice", conn, "SELECT id FROM accounts")
				if want := x.oracleRows(aliceAccounts); err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
					return fmt.Errorf("got %q, %v; want %q", got, err, want)
				}
				return nil
			}),
			custom("names/search-path-extended-then-simple", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				// A SET run through the extended protocol applies when it is executed.
				if err := conn.PgConn().ExecParams(ctxT(x.t), "SET search_path = shadow, public", nil, nil, nil, nil).Read().Err; err != nil {
					return err
				}
				if _, _, err := x.exec("alice", conn, "SELECT iban FROM accounts"); sqlState(err) != stDenied {
					return fmt.Errorf("want shadow.accounts refused, got %v", err)
				}
				return nil
			}),
			refuse("names/temp-table-shadow", "alice", "CREATE TEMP TABLE accounts AS SELECT 1 AS id", deniedOrUnsupported...),
			refuse("names/select-into-temp", "alice", "SELECT * INTO TEMP accounts FROM public.accounts", deniedOrUnsupported...),
			refuse("names/temp-view-shadow", "alice", "CREATE TEMP VIEW customers AS SELECT 1 AS id", deniedOrUnsupported...),
			same("names/cte-shadows-table", "alice", "WITH accounts AS (SELECT 999 AS id) SELECT id FROM accounts", "SELECT 999"),
			same("names/cte-body-reads-table", "alice", "WITH accounts AS (SELECT * FROM accounts) SELECT id FROM accounts", aliceAccounts),
			same("names/cte-does-not-shadow-qualified", "alice", "WITH accounts AS (SELECT 999 AS id) SELECT id FROM public.accounts", aliceAccounts),
			same("names/cte-scope-nested", "alice",
				"WITH accounts AS (SELECT 999::bigint AS id) SELECT (SELECT count(*) FROM public.accounts) + (SELECT count(*) FROM accounts)",
				"SELECT count(*) + 1 FROM accounts WHERE customer_id = 1"),
			same("names/cte-in-sublink-stays-inside", "alice",
				"SELECT id FROM accounts WHERE EXISTS (WITH accounts AS (SELECT 1) SELECT 1 FROM accounts)", aliceAccounts),
			same("names/cte-recursive-named-like-table", "alice",
				"WITH RECURSIVE transactions(id) AS (SELECT 1::bigint UNION ALL SELECT id + 1 FROM transactions WHERE id < 3) SELECT id FROM transactions",
				"SELECT generate_series(1, 3)"),
			same("names/cte-shadow-in-derived-table-only", "alice",
				"SELECT (SELECT count(*) FROM (WITH transactions AS (SELECT 1) SELECT * FROM transactions) s), count(*) FROM transactions",
				"SELECT 1, count(*) FROM transactions WHERE account_id IN (101, 102)"),
			same("names/alias-named-like-other-table", "alice", "SELECT customers.id FROM accounts AS customers", aliceAccounts),
			same("names/whole-row-through-alias", "alice", "SELECT (t).id FROM transactions t", aliceTx),
			custom("names/catalog-qualified", func(x *advCtx) error {
				c := sameOrRefused("", "alice", "SELECT id FROM "+x.w.db+".public.accounts", aliceAccounts)
				return c.run(x)
			}),
			custom("names/dollar-user-schema", func(x *advCtx) error {
				// "$user" comes first in the default search_path: a schema named
				// after the upstream role now holds "accounts".
				ownerExec(x.t, x.w,
					"CREATE SCHEMA "+appRole,
					"CREATE TABLE "+appRole+".accounts (id bigint, iban text)",
					"INSERT INTO "+appRole+".accounts VALUES (1, 'USER-SCHEMA-IBAN')")
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				got, _, err := x.exec("alice", conn, "SELECT iban FROM accounts")
				if sqlState(err) != stDenied {
					return fmt.Errorf("natively accounts is %s.accounts (unprotected): want 42501, got %q, %v", appRole, got, err)
				}
				return nil
			}),
		},
	}
}

func advDynamicSQL() advClass {
	return advClass{
		name: "2-dynamic-sql",
		prep: func(t *testing.T, w *bankWorld) {
			ownerExec(t, w,
				"CREATE FUNCTION public.all_ssn() RETURNS text LANGUAGE sql AS $$SELECT string_agg(ssn, ',' ORDER BY id) FROM public.customers$$",
				"CREATE FUNCTION public.all_ssn2(text, text) RETURNS text LANGUAGE sql AS $$SELECT string_agg(ssn, ',' ORDER BY id) FROM public.customers$$",
				"CREATE OPERATOR public.<?> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.all_ssn2)",
				"CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql AS $$SELECT string_agg(ssn, ',' ORDER BY id) FROM public.customers$$",
				"CREATE FUNCTION public.ssn_dump(anyelement) RETURNS text LANGUAGE sql AS $$SELECT string_agg(ssn, ',' ORDER BY id) FROM public.customers$$",
			)
		},
		cases: []advCase{
			refuse("dyn/query_to_xml", "alice", "SELECT query_to_xml('SELECT ssn FROM customers', true, false, '')", stDenied),
			refuse("dyn/query_to_xml-qualified", "alice", "SELECT pg_catalog.query_to_xml('SELECT ssn FROM customers', true, false, '')", stDenied),
			refuse("dyn/query_to_xml-quoted", "alice", `SELECT "query_to_xml"('SELECT ssn FROM customers', true, false, '')`, stDenied),
			refuse("dyn/query_to_xml-upper", "alice", "SELECT QUERY_TO_XML('SELECT ssn FROM customers', true, false, '')", stDenied),
			refuse("dyn/xpath-over-query_to_xml", "alice", "SELECT xpath('//ssn/text()', query_to_xml('SELECT ssn FROM customers', true, false, ''))", stDenied),
			refuse("dyn/query_to_xml-in-from", "alice", "SELECT * FROM query_to_xml('SELECT ssn FROM customers', true, false, '') x", stDenied),
			refuse("dyn/query_to_xml-in-sublink", "alice", "SELECT 1 WHERE (SELECT query_to_xml('SELECT ssn FROM customers', true, false, '')) IS NOT NULL", stDenied),
			refuse("dyn/query_to_xml-in-cte", "alice", "WITH x AS (SELECT query_to_xml('SELECT ssn FROM customers', true, false, '') q) SELECT q FROM x", stDenied),
			refuse("dyn/query_to_xml_and_xmlschema", "alice", "SELECT query_to_xml_and_xmlschema('SELECT ssn FROM customers', true, false, '')", stDenied),
			refuse("dyn/query_to_xmlschema", "alice", "SELECT query_to_xmlschema('SELECT ssn FROM customers', true, false, '')", stDenied),
			refuse("dyn/table_to_xml", "alice", "SELECT table_to_xml('customers', true, false, '')", stDenied),
			refuse("dyn/table_to_xml-regclass", "alice", "SELECT table_to_xml('public.customers'::regclass, true, false, '')", stDenied),
			refuse("dyn/schema_to_xml", "alice", "SELECT schema_to_xml('public', true, false, '')", stDenied),
			refuse("dyn/database_to_xml", "alice", "SELECT database_to_xml(true, false, '')", stDenied),
			{name: "dyn/cursor_to_xml", persona: "alice", setup: []string{"BEGIN", "DECLARE c CURSOR FOR SELECT ssn FROM customers"},
				sql: "SELECT cursor_to_xml('c', 10, false, false, '')", codes: []string{stDenied}, after: []string{"ROLLBACK"}},
			refuse("dyn/ts_stat", "alice", "SELECT * FROM ts_stat('SELECT to_tsvector(ssn) FROM customers')", stDenied),
			refuse("dyn/ts_rewrite", "alice", "SELECT ts_rewrite('a'::tsquery, 'SELECT to_tsquery(''a''), to_tsquery(name) FROM customers')", stDenied),
			refuse("dyn/dblink", "alice", "SELECT * FROM dblink('dbname=postgres', 'SELECT ssn FROM customers') AS t(ssn text)", stDenied),
			refuse("dyn/dblink_exec", "alice", "SELECT dblink_exec('dbname=postgres', 'DELETE FROM customers')", stDenied),
			refuse("dyn/do-block", "alice", "DO $$BEGIN RAISE NOTICE '%', (SELECT string_agg(ssn, ',') FROM customers); END$$", deniedOrUnsupported...),
			refuse("dyn/do-format-execute", "alice",
				`DO $$DECLARE r text; BEGIN EXECUTE format('SELECT string_agg(%I, '','') FROM %I', 'ssn', 'customers') INTO r; RAISE NOTICE '%', r; END$$`,
				deniedOrUnsupported...),
			refuse("dyn/create-function", "alice", "CREATE FUNCTION public.x() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM customers'", deniedOrUnsupported...),
			refuse("dyn/call", "alice", "CALL public.nothing()", deniedOrUnsupported...),
			refuse("dyn/create-rule", "alice", "CREATE RULE r AS ON UPDATE TO customers DO ALSO NOTIFY x", deniedOrUnsupported...),
			refuse("dyn/user-function", "alice", "SELECT public.all_ssn()", stDenied),
			refuse("dyn/user-function-unqualified", "alice", "SELECT all_ssn()", stDenied),
			refuse("dyn/user-function-in-from", "alice", "SELECT * FROM public.all_ssn()", stDenied),
			refuse("dyn/user-operator", "alice", "SELECT 'a' <?> 'b'", stDenied),
			refuse("dyn/user-operator-qualified", "alice", "SELECT 'a' OPERATOR(public.<?>) 'b'", stDenied),
			refuse("dyn/user-operator-in-where", "alice", "SELECT id FROM customers WHERE name <?> 'b' IS NOT NULL", stDenied),
			{name: "dyn/builtin-shadowed-on-path", persona: "alice", setup: []string{"SET search_path = public, pg_catalog"},
				sql: "SELECT upper('x')", codes: []string{stDenied}},
			same("dyn/builtin-not-shadowed-by-default", "alice", "SELECT upper('x')", "SELECT 'X'"),
			{name: "dyn/prepare-execute", persona: "alice", setup: []string{"PREPARE p AS SELECT ssn FROM customers"},
				sql: "EXECUTE p", oracle: "SELECT ssn FROM customers WHERE id = 1"},
			{name: "dyn/prepare-param-hidden", persona: "alice", setup: []string{"PREPARE p(text) AS SELECT id FROM customers WHERE name = $1"},
				sql: "EXECUTE p('Carol Chen')", oracle: noRows},
			{name: "dyn/prepare-create-table-as", persona: "alice", sql: "PREPARE p AS CREATE TABLE x AS SELECT * FROM customers", codes: []string{stDenied, stUnsupported, "42601"}},
			{name: "dyn/cursor-fetch", persona: "alice", setup: []string{"BEGIN", "DECLARE c CURSOR FOR SELECT ssn FROM customers"},
				sql: "FETCH ALL FROM c", oracle: "SELECT ssn FROM customers WHERE id = 1", after: []string{"ROLLBACK"}},
			{name: "dyn/cursor-with-hold", persona: "alice", setup: []string{"DECLARE c CURSOR WITH HOLD FOR SELECT amount FROM transactions"},
				sql: "FETCH ALL FROM c", oracle: "SELECT amount FROM transactions WHERE account_id IN (101, 102)"},
			same("dyn/format-is-only-text", "alice", "SELECT format('SELECT %I FROM %I', 'ssn', 'customers')", "SELECT 'SELECT ssn FROM customers'"),
			refuse("dyn/pg_read_file", "alice", "SELECT pg_read_file('/etc/passwd')", stDenied),
			refuse("dyn/pg_read_binary_file", "alice", "SELECT pg_read_binary_file('postgresql.conf')", stDenied),
			refuse("dyn/copy-from-program", "alice", "COPY support_tickets FROM PROGRAM 'cat /etc/passwd'", deniedOrUnsupported...),
			refuse("dyn/copy-to-server-file", "alice", "COPY (SELECT ssn FROM customers) TO '/tmp/mandate-ssn.txt'", deniedOrUnsupported...),
			refuse("dyn/copy-from-server-file", "alice", "COPY support_tickets FROM '/etc/passwd'", deniedOrUnsupported...),
			refuse("dyn/set-role", "alice", "SET ROLE postgres", deniedOrUnsupported...),
			refuse("dyn/set-session-authorization", "alice", "SET SESSION AUTHORIZATION postgres", deniedOrUnsupported...),
			refuse("dyn/set_config-role", "alice", "SELECT set_config('role', 'postgres', false)", deniedOrUnsupported...),
			refuse("dyn/set_config-search_path", "alice", "SELECT set_config('search_path', 'shadow', false)", deniedOrUnsupported...),
			refuse("dyn/mandate-mask-function", "dana", "SELECT mandate.mask_hash('1', 'customer')", stDenied),
			refuse("dyn/mandate-deny_unless", "alice", "SELECT mandate.deny_unless(true, 'public.customers')", stDenied),
			refuse("dyn/notify-forged-state-change", "alice", `NOTIFY mandate_state, '{"kind":"delegation","op":"update","generation":999999}'`, stDenied),
			refuse("dyn/pg_notify", "alice", "SELECT pg_notify('mandate_state', '{}')", stDenied),
			// Attribute notation: x.f is the call f(x) when x has no column f;
			// it must not get around the function allow-list.
			refuse("dyn/attribute-notation-not-allowed", "sam", "SELECT c.pg_column_size, c.record_out FROM customers c", stUndefinedColumn),
			refuse("dyn/attribute-notation-user-function", "alice", "SELECT g.ssn_dump FROM generate_series(1, 1) g", stUndefinedColumn),
			refuse("dyn/attribute-notation-user-function-row", "alice", "SELECT (a).ssn_dump FROM accounts a", stUndefinedColumn),
			refuse("dyn/attribute-notation-in-where", "alice", "SELECT id FROM accounts a WHERE a.ssn_dump IS NOT NULL", stUndefinedColumn),
			refuse("dyn/attribute-notation-derived", "sam",
				"SELECT s.record_out FROM (SELECT * FROM support_tickets) s JOIN customers c ON c.id = s.customer_id", stUndefinedColumn),
			refuse("dyn/user-function-written-out", "alice", "SELECT ssn_dump(1)", stDenied),
		},
	}
}

// danaTxCount is how many transactions dana sees: the answer to any count
// whose extra condition holds on every visible row.
const danaTxCount = "SELECT count(*) FROM transactions WHERE account_id IN (101, 102, 103)"

func advSideChannels() advClass {
	return advClass{
		name: "3-side-channels",
		prep: func(t *testing.T, w *bankWorld) {
			ownerExec(t, w,
				"ANALYZE",
				"CREATE FUNCTION public.peek(text, text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$BEGIN RAISE NOTICE 'peek %', $1; RETURN true; END$$",
				"CREATE OPERATOR public.<~> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.peek)",
			)
		},
		cases: []advCase{
			same("side/div-zero-where", "alice", "SELECT id FROM accounts WHERE 1 / (balance - 920.10) <> 0", aliceAccounts),
			// A constant 1/0 is folded at plan time (natively too): the divisor must depend on the row.
			same("side/div-zero-case", "alice", "SELECT id FROM accounts WHERE CASE WHEN customer_id = 2 THEN 1 / (customer_id - 2) ELSE 1 END = 1", aliceAccounts),
			same("side/div-zero-int8", "alice", "SELECT id FROM accounts WHERE 100 / (customer_id - 2) IS NOT NULL", aliceAccounts),
			same("side/div-zero-pk-probe", "alice", "SELECT id FROM transactions WHERE 1 / (id - 9) IS NOT NULL", aliceTx),
			same("side/failing-cast-echoes-ssn", "alice", "SELECT id FROM customers WHERE CASE WHEN id = 2 THEN ssn::int ELSE 0 END = 0", "SELECT 1"),
			same("side/failing-cast-iban", "alice", "SELECT id FROM accounts WHERE (CASE WHEN customer_id = 2 THEN iban ELSE '0' END)::numeric = 0", aliceAccounts),
			same("side/failing-cast-in-join-on", "alice",
				"SELECT a.id FROM accounts a JOIN transactions t ON t.account_id = a.id AND (CASE WHEN t.account_id = 103 THEN t.merchant ELSE '1' END)::int = 1",
				"SELECT a.id FROM accounts a JOIN transactions t ON t.account_id = a.id WHERE a.customer_id = 1"),
			same("side/failing-cast-having", "alice",
				"SELECT account_id FROM transactions GROUP BY account_id HAVING min(CASE WHEN account_id = 103 THEN merchant ELSE '1' END)::int = 1",
				"SELECT DISTINCT account_id FROM transactions WHERE account_id IN (101, 102)"),
			same("side/error-in-derived-target", "alice", "SELECT id FROM (SELECT id, 1 / (balance - 920.10) AS x FROM accounts) s WHERE x IS NOT NULL", aliceAccounts),
			same("side/error-in-cte-target", "alice", "WITH s AS (SELECT id, CASE WHEN id = 2 THEN ssn::int END AS x FROM customers) SELECT id FROM s WHERE x IS NULL", "SELECT 1"),
			same("side/error-in-exists-sublink", "alice", "SELECT a.id FROM accounts a WHERE EXISTS (SELECT 1 WHERE 1 / (a.balance - 920.10) > -1e9)", aliceAccounts),
			same("side/error-in-in-sublink", "alice", "SELECT id FROM accounts WHERE id IN (SELECT account_id FROM transactions WHERE 1 / (amount - 1722.08) <> 0)", aliceAccounts),
			same("side/error-in-lateral", "alice", "SELECT a.id FROM accounts a, LATERAL (SELECT 1 / (a.balance - 920.10) AS x) l", aliceAccounts),
			same("side/error-in-function-in-from", "alice",
				"SELECT a.id FROM accounts a, generate_series(1, abs(100 / (a.customer_id - 2))::int) g WHERE g = 1", aliceAccounts),
			same("side/error-in-order-by", "alice", "SELECT id FROM customers ORDER BY CASE WHEN id = 2 THEN ssn::int END", "SELECT 1"),
			// Time is an oracle too (red team round 5, F1): a sublink that
			// cannot fail, run only when a hidden row's value passes a test,
			// turns a statement_timeout into an error.
			custom("side/slow-sublink-under-case", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				const slow = "(SELECT true FROM pg_catalog.pg_attribute x, pg_catalog.pg_attribute y WHERE x.attname < y.attname AND y.attname < x.attname LIMIT 1)"
				for _, sql := range []string{"BEGIN", "SET LOCAL statement_timeout = '200ms'"} {
					if _, _, err := x.exec("alice", conn, sql); err != nil {
						return err
					}
				}
				defer x.exec("alice", conn, "ROLLBACK")
				got, _, err := x.exec("alice", conn, "SELECT id FROM accounts a WHERE a.id = 104 AND CASE WHEN a.iban >= 'NL' THEN "+slow+" END")
				if err != nil || len(got) != 0 {
					return fmt.Errorf("hidden account 104 under a slow sublink: got %q, %v; want no rows, no error", got, err)
				}
				return nil
			}),
			same("side/error-in-group-by", "alice", "SELECT count(*) FROM customers GROUP BY CASE WHEN id = 2 THEN ssn::int END", "SELECT 1"),
			same("side/error-in-aggregate-arg", "alice", "SELECT sum(CASE WHEN customer_id = 2 THEN 1 / (customer_id - 2) ELSE 1 END) FROM accounts", "SELECT count(*) FROM accounts WHERE customer_id = 1"),
			same("side/error-in-aggregate-filter", "alice", "SELECT count(*) FILTER (WHERE 1 / (balance - 920.10) > -1e9) FROM accounts", "SELECT count(*) FROM accounts WHERE customer_id = 1"),
			same("side/error-in-window-arg", "alice", "SELECT id, sum(1 / (balance - 920.10)) OVER () IS NOT NULL FROM accounts", "SELECT id, true FROM accounts WHERE customer_id = 1"),
			same("side/invalid-regex-on-hidden-row", "alice", "SELECT id FROM customers WHERE ssn ~ CASE WHEN id = 2 THEN '(' ELSE '.' END", "SELECT 1"),
			same("side/error-in-union-branch", "alice", "SELECT id FROM accounts WHERE 1 / (balance - 920.10) <> 0 UNION ALL SELECT id FROM customers", "SELECT id FROM accounts WHERE customer_id = 1 UNION ALL SELECT 1"),
			same("side/error-in-limit", "alice", "SELECT id FROM transactions ORDER BY id LIMIT (SELECT count(*) FROM accounts WHERE 1 / (balance - 920.10) <> 0)",
				"SELECT id FROM transactions WHERE account_id IN (101, 102) ORDER BY id LIMIT 2"),
			// Errors of expressions that read no column but run per row: the
			// filter must run first, so no answer depends on hidden rows.
			same("side/domain-cast-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR (-1)::information_schema.cardinal_number IS NULL", danaTxCount),
			same("side/domain-cast-error-probe-id", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id < 40 OR '-1'::information_schema.cardinal_number IS NULL", danaTxCount),
			same("side/xmlparse-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR xmlparse(document '<') IS NULL", danaTxCount),
			same("side/stable-function-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR to_date('x', 'YYYY') IS NULL", danaTxCount),
			same("side/text-to-date-cast-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR 'x'::text::date IS NULL", danaTxCount),
			same("side/stable-operator-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR timestamptz '294276-01-01' + interval '1000 years' IS NULL", danaTxCount),
			same("side/sublink-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR (SELECT x / 0 FROM generate_series(0, 0) x) = 1", danaTxCount),
			same("side/exists-error-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.account_id <> 105 OR EXISTS (SELECT 1 FROM generate_series(0, 0) x WHERE 1 / x = 1)", danaTxCount),
			// A negative LIMIT or OFFSET, or a bad TABLESAMPLE argument, fails
			// when the subquery's scan runs: only once a row reaches it.
			same("side/negative-offset-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id <> 17 OR EXISTS (SELECT 1 OFFSET -1)", danaTxCount),
			same("side/negative-limit-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id < 40 OR EXISTS (SELECT 1 LIMIT -1)", danaTxCount),
			same("side/negative-offset-in-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id <> 17 OR t.id IN (SELECT 1 OFFSET -1)", danaTxCount),
			same("side/scalar-sublink-rows-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id <> 17 OR (SELECT x FROM (VALUES (1), (2)) v(x)) IS NULL", danaTxCount),
			same("side/array-sublink-dimensions-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id <> 17 OR ARRAY(SELECT x FROM (VALUES ('{1}'::int[]), ('{1,2}'::int[])) v(x)) IS NULL", danaTxCount),
			same("side/array-dimensions-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE ARRAY[CASE WHEN t.id = 17 THEN '{{1}}'::int[] ELSE '{1}'::int[] END, '{1}'::int[]] IS NOT NULL", danaTxCount),
			same("side/tablesample-probe", "dana",
				"SELECT count(*) FROM transactions t WHERE t.id <> 17 OR EXISTS (SELECT 1 FROM pg_namespace TABLESAMPLE BERNOULLI (200))", danaTxCount),
			clean("side/leaky-operator-notices", "alice", "SELECT id FROM customers WHERE ssn <~> 'x'", false),
			clean("side/leaky-operator-in-join", "alice", "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id AND c.email <~> 'x'", false),
			custom("side/random-call-count", func(x *advCtx) error {
				// random() after setseed is a counter: its next value says how
				// often the WHERE ran, i.e. how many rows reached it.
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				got, _, err := x.exec("alice", conn, "SELECT setseed(0.5); SELECT count(*) FROM accounts WHERE random() < 2; SELECT random()")
				if err != nil {
					return err
				}
				want := x.oracleRows("SELECT setseed(0.5); SELECT count(*) FROM (SELECT 1 FROM accounts WHERE customer_id = 1) s WHERE random() < 2; SELECT random()")
				if strings.Join(got, ",") != strings.Join(want, ",") {
					return fmt.Errorf("random() was called for hidden rows: next value %q, want %q (one call per visible row)", got, want)
				}
				return nil
			}),
			same("side/limit-offset", "alice", "SELECT id FROM transactions ORDER BY id LIMIT 3 OFFSET 6", aliceTx+" ORDER BY id LIMIT 3 OFFSET 6"),
			same("side/offset-past-visible", "alice", "SELECT id FROM transactions ORDER BY id OFFSET 8", noRows),
			same("side/count-over-with-limit", "alice", "SELECT count(*) OVER () FROM transactions LIMIT 1", "SELECT count(*) FROM transactions WHERE account_id IN (101, 102)"),
			same("side/row-number", "alice", "SELECT id, row_number() OVER (ORDER BY id) FROM transactions",
				"SELECT id, row_number() OVER (ORDER BY id) FROM transactions WHERE account_id IN (101, 102)"),
			same("side/lag-lead", "alice", "SELECT id, lag(amount) OVER (ORDER BY id), lead(amount) OVER (ORDER BY id) FROM transactions",
				"SELECT id, lag(amount) OVER (ORDER BY id), lead(amount) OVER (ORDER BY id) FROM transactions WHERE account_id IN (101, 102)"),
			same("side/window-unbounded-frame", "alice",
				"SELECT DISTINCT max(amount) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM transactions",
				"SELECT max(amount) FROM transactions WHERE account_id IN (101, 102)"),
			same("side/ntile-percent-rank", "alice", "SELECT id, ntile(3) OVER (ORDER BY id), percent_rank() OVER (ORDER BY id) FROM transactions",
				"SELECT id, ntile(3) OVER (ORDER BY id), percent_rank() OVER (ORDER BY id) FROM transactions WHERE account_id IN (101, 102)"),
			same("side/fetch-with-ties", "alice", "SELECT id FROM transactions ORDER BY account_id FETCH FIRST 1 ROWS WITH TIES",
				aliceTx+" ORDER BY account_id FETCH FIRST 1 ROWS WITH TIES"),
			sameOrRefused("side/tablesample", "alice", "SELECT id FROM transactions TABLESAMPLE SYSTEM (100)", aliceTx),
			same("side/hidden-key-lookup", "alice", "SELECT id FROM customers WHERE id = 2", noRows),
			same("side/pk-range-probe", "alice", "SELECT count(*) FROM transactions WHERE id BETWEEN 9 AND 52", "SELECT 0"),
			same("side/min-max-id", "alice", "SELECT min(id), max(id) FROM transactions", "SELECT min(id), max(id) FROM transactions WHERE account_id IN (101, 102)"),
			same("side/exists-hidden-ssn", "alice", "SELECT EXISTS (SELECT 1 FROM customers WHERE ssn = '234-56-7890')", "SELECT false"),
			same("side/scalar-subquery-cardinality", "alice", "SELECT (SELECT id FROM customers)", "SELECT 1"),
			same("side/not-in-hidden", "alice", "SELECT count(*) FROM generate_series(1, 12) g WHERE g NOT IN (SELECT id FROM customers)", "SELECT 11"),
			planCase("side/explain-shows-filter", "alice", "EXPLAIN SELECT * FROM accounts", "customer_id = "),
			planCase("side/explain-costs-off", "bob", "EXPLAIN (COSTS OFF) SELECT * FROM transactions", "income", "101"),
			planCase("side/explain-dana-consenting-ids", "dana", "EXPLAIN SELECT count(*) FROM accounts", "customer_id", "'{1,2}'"),
			planCase("side/explain-sam-assignments", "sam", "EXPLAIN SELECT * FROM customers", "'{2,4}'", "id = ANY"),
			planCase("side/explain-analyze-rows-removed", "alice", "EXPLAIN ANALYZE SELECT * FROM transactions", "Rows Removed by Filter"),
			planCase("side/explain-analyze-json", "alice", "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM transactions", "Rows Removed by Filter"),
			planCase("side/explain-analyze-customers", "carol", "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT name FROM customers", "Rows Removed by Filter"),
			planCase("side/explain-verbose-masks", "sam", "EXPLAIN VERBOSE SELECT ssn FROM customers", "Filter:"),
		},
	}
}

func advMaskInference() advClass {
	const (
		samMasked  = "repeat('*', length(ssn) - 4) || right(ssn, 4)"
		danaRound  = "(round(balance / 1000) * 1000)::numeric(14,2)"
		danaScope  = " FROM accounts WHERE customer_id IN (1, 2)"
		sumRounded = "SELECT sum(" + danaRound + ")" + danaScope
	)
	return advClass{
		name: "4-masks",
		cases: []advCase{
			same("mask/ssn-equals-raw", "sam", "SELECT id FROM customers WHERE ssn = '234-56-7890'", noRows),
			same("mask/ssn-like-prefix", "sam", "SELECT id FROM customers WHERE ssn LIKE '234%'", noRows),
			same("mask/ssn-substr", "sam", "SELECT id FROM customers WHERE substr(ssn, 1, 3) = '234'", noRows),
			same("mask/ssn-regex", "sam", "SELECT id FROM customers WHERE ssn ~ '^[0-9]'", noRows),
			same("mask/ssn-in-list", "sam", "SELECT id FROM customers WHERE ssn IN ('234-56-7890', '304-14-1028')", noRows),
			same("mask/phone-equals-raw", "sam", "SELECT id FROM customers WHERE phone = '+1-555-0102'", noRows),
			same("mask/ssn-between", "sam", "SELECT id FROM customers WHERE ssn BETWEEN '234-56-7889' AND '234-56-7891'", noRows),
			same("mask/order-by-ssn", "sam", "SELECT string_agg(id::text, ',' ORDER BY ssn, id) FROM customers",
				"SELECT string_agg(id::text, ',' ORDER BY "+samMasked+", id) FROM customers WHERE id IN (2, 4)"),
			same("mask/group-by-ssn-prefix", "sam", "SELECT left(ssn, 3), count(*) FROM customers GROUP BY 1",
				"SELECT left("+samMasked+", 3), count(*) FROM customers WHERE id IN (2, 4) GROUP BY 1"),
			same("mask/length-ssn", "sam", "SELECT id, length(ssn) FROM customers", "SELECT id, length(ssn) FROM customers WHERE id IN (2, 4)"),
			same("mask/self-join-on-ssn", "sam", "SELECT c1.id FROM customers c1 JOIN customers c2 ON c1.ssn = c2.ssn AND c1.id <> c2.id", noRows),
			same("mask/join-ticket-masked-suffix", "sam", "SELECT s.id FROM support_tickets s JOIN customers c ON c.id = s.customer_id WHERE c.ssn LIKE '%7890'", "SELECT 1"),
			clean("mask/min-max-agg-ssn", "sam", "SELECT min(ssn), max(ssn), string_agg(ssn, ',') FROM customers", true),
			clean("mask/md5-ssn", "sam", "SELECT md5(ssn), md5(phone) FROM customers", true),
			clean("mask/cast-ssn-bytea", "sam", "SELECT ssn::bytea, encode(ssn::bytea, 'hex') FROM customers", true),
			clean("mask/row-to-json", "sam", "SELECT row_to_json(c) FROM customers c", true),
			clean("mask/whole-row-text", "sam", "SELECT c::text FROM customers c", true),
			clean("mask/to-jsonb-star", "sam", "SELECT to_jsonb(c.*) FROM customers c", true),
			clean("mask/materialized-cte", "sam", "WITH x AS MATERIALIZED (SELECT ssn, phone FROM customers) SELECT * FROM x", true),
			clean("mask/union", "sam", "SELECT ssn FROM customers UNION SELECT phone FROM customers", true),
			clean("mask/correlated-subquery", "sam", "SELECT (SELECT ssn FROM customers c2 WHERE c2.id = c.id) FROM customers c", true),
			clean("mask/lateral-unnest", "sam", "SELECT x FROM customers c, LATERAL unnest(ARRAY[c.ssn, c.phone]) x", true),
			clean("mask/jsonb-path", "sam", "SELECT jsonb_path_query(to_jsonb(c), '$.ssn') FROM customers c", true),
			{name: "mask/returning-sublink", persona: "sam", setup: []string{"BEGIN"},
				sql:  "UPDATE support_tickets SET status = status WHERE id = 1 RETURNING (SELECT ssn FROM customers WHERE id = support_tickets.customer_id)",
				rows: []string{"*******7890"}, after: []string{"ROLLBACK"}},
			same("mask/assistant-iban-equals", "assistant", "SELECT id FROM accounts WHERE iban = 'DE89370400440532013000'", noRows),
			same("mask/assistant-iban-prefix", "assistant", "SELECT id FROM accounts WHERE iban LIKE 'DE89%'", noRows),
			same("mask/assistant-iban-position", "assistant", "SELECT id FROM accounts WHERE position('3704' in iban) > 0", noRows),
			same("mask/assistant-iban-self-join", "assistant", "SELECT a.id FROM accounts a JOIN accounts b ON a.iban = b.iban AND a.id <> b.id", noRows),
			clean("mask/assistant-iban-aggregates", "assistant", "SELECT max(iban), min(iban), string_agg(iban, ',') FROM accounts", true),
			clean("mask/assistant-json-agg", "assistant", "SELECT json_agg(a) FROM accounts a", true),
			refuse("mask/assistant-customers", "assistant", "SELECT ssn FROM customers", stDenied),
			refuse("mask/assistant-customers-sublink", "assistant", "SELECT (SELECT ssn FROM customers LIMIT 1)", stDenied),
			same("mask/dana-balance-equals", "dana", "SELECT id FROM accounts WHERE balance = 2450.75", noRows),
			same("mask/dana-balance-range", "dana", "SELECT id FROM accounts WHERE balance BETWEEN 2450 AND 2451", noRows),
			same("mask/dana-balance-text", "dana", "SELECT id FROM accounts WHERE balance::text LIKE '%.75'", noRows),
			same("mask/dana-sum-balance", "dana", "SELECT sum(balance) FROM accounts", sumRounded),
			same("mask/dana-avg-balance", "dana", "SELECT avg(balance) FROM accounts", "SELECT avg("+danaRound+")"+danaScope),
			same("mask/dana-group-by-balance", "dana", "SELECT balance, count(*) FROM accounts GROUP BY balance", "SELECT "+danaRound+", count(*)"+danaScope+" GROUP BY 1"),
			clean("mask/dana-min-max-balance", "dana", "SELECT min(balance), max(balance), balance::float8, balance * 1.0 FROM accounts GROUP BY balance", true),
			same("mask/dana-customer-id-raw", "dana", "SELECT id FROM accounts WHERE customer_id = 1", noRows),
			same("mask/dana-customer-id-join", "dana", "SELECT t.id FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE a.customer_id = 2", noRows),
			same("mask/dana-iban-length", "dana", "SELECT id, length(iban) FROM accounts", "SELECT id, length(iban)"+danaScope),
			clean("mask/dana-iban-aggregate", "dana", "SELECT string_agg(iban, ','), max(iban) FROM accounts", true),
			refuse("mask/dana-hash-inversion", "dana", "SELECT id FROM accounts WHERE customer_id = mandate.mask_hash_int8(1, 'customer')", stDenied),
			refuse("mask/dana-mask-keys", "dana", "SELECT * FROM mandate.mask_keys", stDenied),
			refuse("mask/dana-customers", "dana", "SELECT name FROM customers", stDenied),
			refuse("mask/dana-join-customers", "dana", "SELECT a.id FROM accounts a JOIN customers c ON c.id = a.customer_id", stDenied),
			// Attribute notation: customers.to_jsonb is to_jsonb(customers),
			// which the single-table (inline) rewrite handed the raw row.
			refuse("mask/attribute-notation-to_jsonb", "sam", "SELECT customers.to_jsonb FROM customers", stUndefinedColumn),
			refuse("mask/attribute-notation-alias", "sam", "SELECT c.to_jsonb ->> 'ssn' AS ssn FROM customers c WHERE c.id = 2", stUndefinedColumn),
			refuse("mask/attribute-notation-row_to_json", "sam", "SELECT c.row_to_json FROM customers c WHERE c.id = 2", stUndefinedColumn),
			refuse("mask/attribute-notation-two", "sam", "SELECT c.quote_literal, c.to_json FROM customers c", stUndefinedColumn),
			refuse("mask/attribute-notation-schema-qualified", "sam", "SELECT public.customers.to_jsonb FROM customers", stUndefinedColumn),
			refuse("mask/attribute-notation-parenthesized", "sam", "SELECT (c).to_jsonb FROM customers c", stUndefinedColumn),
			refuse("mask/attribute-notation-star", "sam", "SELECT (c.*).row_to_json FROM customers c", stUndefinedColumn),
			refuse("mask/attribute-notation-join", "sam", "SELECT c.to_jsonb FROM customers c JOIN support_tickets t ON t.customer_id = c.id", stUndefinedColumn),
			refuse("mask/attribute-notation-subquery", "sam", "SELECT s.to_jsonb FROM (SELECT * FROM customers) s", stUndefinedColumn),
			refuse("mask/attribute-notation-cte", "sam", "WITH s AS (SELECT * FROM customers) SELECT s.to_jsonb FROM s", stUndefinedColumn),
			refuse("mask/attribute-notation-dana", "dana", "SELECT a.to_jsonb FROM accounts a", stUndefinedColumn),
			refuse("mask/attribute-notation-assistant", "assistant", "SELECT accounts.row_to_json FROM accounts", stUndefinedColumn),
			refuse("mask/attribute-notation-copy", "sam", "COPY (SELECT c.to_jsonb FROM customers c) TO STDOUT", stUndefinedColumn),
			custom("mask/attribute-notation-extended", func(x *advCtx) error {
				conn, err := x.as("sam")
				if err != nil {
					return err
				}
				for range 2 { // the second run would come from pgx's statement cache
					if got, err := x.query("sam", conn, "SELECT c.to_jsonb FROM customers c"); sqlState(err) != stUndefinedColumn {
						return fmt.Errorf("want 42703, got %q, %v", got, err)
					}
				}
				return nil
			}),
			// Columns, fields and whole-row values keep working, masked.
			same("mask/attribute-columns-and-fields", "sam", "SELECT c.id, (c).ssn, (c.*).phone, s.n FROM customers c JOIN (SELECT id AS n FROM customers) s ON s.n = c.id",
				"SELECT id, "+samMasked+", repeat('*', length(phone) - 4) || right(phone, 4), id FROM customers WHERE id IN (2, 4)"),
			clean("mask/whole-row-function-written-out", "sam", "SELECT to_jsonb(c), row_to_json(c.*) FROM customers c", true),
			delegateCase("mask/attribute-notation-delegation-columns", "victor",
				func(d *policy.Delegation) {
					d.Columns = []string{"public.transactions.id", "public.transactions.amount"}
				},
				func(x *advCtx, conn *pgx.Conn, _ string) error {
					if err := x.expectCode("bob", conn, "SELECT t.to_jsonb FROM transactions t LIMIT 2", stUndefinedColumn); err != nil {
						return err
					}
					got, _, err := x.exec("bob", conn, "SELECT to_jsonb(t) ->> 'merchant' FROM transactions t")
					if err != nil {
						return err
					}
					for _, v := range got {
						if v != "<null>" {
							return fmt.Errorf("the delegation leaves merchant out, bob reads %q", v)
						}
					}
					return nil
				}),
		},
	}
}

func advCatalogs() advClass {
	return advClass{
		name: "5-catalogs",
		prep: func(t *testing.T, w *bankWorld) {
			ownerExec(t, w, "ANALYZE", "SELECT lo_from_bytea(424242, 'LO-SECRET-234-56-7890')",
				"CREATE VIEW public.rel_stats AS SELECT relname, reltuples FROM pg_class")
		},
		cases: []advCase{
			refuse("cat/pg_stats", "alice", "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'", stDenied),
			refuse("cat/pg_stats-qualified", "alice", "SELECT most_common_vals::text FROM pg_catalog.pg_stats", stDenied),
			refuse("cat/pg_stats-quoted", "alice", `SELECT * FROM "pg_stats"`, stDenied),
			refuse("cat/pg_stats-upper", "alice", "SELECT * FROM PG_STATS", stDenied),
			refuse("cat/pg_stats-in-sublink", "alice", "SELECT (SELECT count(*) FROM pg_stats)", stDenied),
			refuse("cat/pg_stats-in-cte", "alice", "WITH s AS (SELECT * FROM pg_stats) SELECT count(*) FROM s", stDenied),
			{name: "cat/pg_stats-via-search-path", persona: "alice", setup: []string{"SET search_path = pg_catalog"},
				sql: "SELECT count(*) FROM pg_stats", codes: []string{stDenied}},
			refuse("cat/pg_statistic", "alice", "SELECT stavalues1::text FROM pg_statistic", stDenied),
			refuse("cat/pg_statistic_ext_data", "alice", "SELECT * FROM pg_statistic_ext_data", stDenied),
			refuse("cat/pg_stats_ext", "alice", "SELECT * FROM pg_stats_ext", stDenied),
			refuse("cat/pg_stat_activity", "alice", "SELECT query FROM pg_stat_activity", stDenied),
			refuse("cat/pg_stat_user_tables", "alice", "SELECT n_live_tup FROM pg_stat_user_tables", stDenied),
			refuse("cat/pg_stat_all_tables", "alice", "SELECT n_live_tup FROM pg_stat_all_tables", stDenied),
			refuse("cat/pg_statio_user_tables", "alice", "SELECT * FROM pg_statio_user_tables", stDenied),
			refuse("cat/pg_stat_statements", "alice", "SELECT query FROM pg_stat_statements", stDenied, stUndefined), // not installed: 42P01
			refuse("cat/pg_stat_get_live_tuples", "alice", "SELECT pg_stat_get_live_tuples('accounts'::regclass)", stDenied),
			refuse("cat/pg_stat_get_backend_activity", "alice", "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s", stDenied),
			refuse("cat/pg_mcv_list_items", "alice", "SELECT * FROM pg_mcv_list_items(NULL)", stDenied),
			refuse("cat/pg_relation_size", "alice", "SELECT pg_relation_size('accounts')", stDenied),
			custom("cat/pg_class-reltuples", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				got, _, err := x.exec("alice", conn, "SELECT reltuples::bigint FROM pg_class WHERE relname = 'accounts'")
				if st := sqlState(err); st == stDenied {
					return nil
				}
				if err != nil || len(got) != 1 {
					return fmt.Errorf("got %q, %v", got, err)
				}
				if got[0] != "-1" && got[0] != "0" && got[0] != "2" {
					return fmt.Errorf("pg_class.reltuples says accounts has %s rows; alice may see 2", got[0])
				}
				return nil
			}),
			// pg_class stays readable, but every relation has the planner
			// statistics of one never analyzed (the class's prep ran ANALYZE).
			same("cat/pg_class-stats-qualified-join", "alice",
				"SELECT c.reltuples::bigint, c.relpages, c.relallvisible FROM pg_catalog.pg_class c "+
					"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = 'accounts'",
				"SELECT -1, 0, 0"),
			same("cat/pg_class-stats-of-indexes", "alice",
				"SELECT count(*) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "+
					"WHERE x.indrelid = 'accounts'::regclass AND (i.reltuples >= 0 OR i.relpages > 0)", "SELECT 0"),
			same("cat/pg_class-stats-scalar-subquery", "alice",
				"SELECT (SELECT reltuples::bigint FROM pg_class WHERE relname = 'accounts')", "SELECT -1"),
			same("cat/pg_class-stats-from-subquery", "alice",
				"SELECT s.n FROM (SELECT relname, reltuples::bigint AS n FROM ONLY pg_catalog.pg_class) s WHERE s.relname = 'accounts'", "SELECT -1"),
			same("cat/pg_class-stats-cte", "alice",
				"WITH c AS MATERIALIZED (SELECT * FROM pg_class) SELECT reltuples::bigint FROM c WHERE relname = 'accounts'", "SELECT -1"),
			same("cat/pg_class-stats-whole-row", "alice",
				"SELECT (c).reltuples::bigint, row_to_json(c)->>'relpages' FROM pg_class c WHERE relname = 'accounts'", "SELECT -1, '0'"),
			same("cat/pg_class-stats-where", "alice",
				"SELECT count(*) FROM pg_class WHERE relname = 'accounts' AND reltuples BETWEEN 3 AND 1000", "SELECT 0"),
			{name: "cat/pg_class-stats-search-path", persona: "alice", sql: "SET search_path = pg_catalog, public; " +
				"SELECT reltuples::bigint FROM pg_class WHERE relname = 'accounts'", rows: []string{"-1"}, after: []string{"RESET search_path"}},
			refuse("cat/pg_class-system-column", "alice", "SELECT xmin FROM pg_class WHERE relname = 'accounts'", stUnsupported),
			refuse("cat/pg_class-view", "alice", "SELECT reltuples::bigint FROM rel_stats WHERE relname = 'accounts'", stDenied),
			custom("cat/pg_prepared_statements-text", func(x *advCtx) error {
				return statementTextCase(x, "dana", []string{"PREPARE p AS SELECT count(*) FROM accounts"},
					"SELECT statement FROM pg_prepared_statements")
			}),
			custom("cat/pg_prepared_statements-extended", func(x *advCtx) error {
				conn, err := x.as("sam")
				if err != nil {
					return err
				}
				if _, err := x.query("sam", conn, "SELECT id FROM customers WHERE id > $1", 0); err != nil {
					return err
				}
				got, _, err := x.exec("sam", conn, "SELECT statement FROM pg_prepared_statements")
				return checkStatementText(got, err)
			}),
			custom("cat/pg_cursors-text", func(x *advCtx) error {
				return statementTextCase(x, "bob", []string{"BEGIN", "DECLARE c CURSOR FOR SELECT id FROM transactions"},
					"SELECT statement FROM pg_cursors")
			}),
			refuse("cat/pg_locks", "alice", "SELECT locktype, mode, granted FROM pg_locks", stDenied),
			// The policy store's sequences count every user's consent changes.
			refuse("cat/pg_sequences", "sam", "SELECT sequencename, last_value FROM pg_sequences", stDenied),
			refuse("cat/pg_sequences-qualified", "sam", "SELECT last_value FROM pg_catalog.pg_sequences WHERE schemaname = 'mandate'", stDenied),
			refuse("cat/pg_sequence_last_value", "sam", "SELECT pg_sequence_last_value(c.oid) FROM pg_class c WHERE c.relkind = 'S'", stDenied),
			refuse("cat/mandate-sequence", "sam", "SELECT last_value FROM mandate.consent_history_seq_seq", stDenied),
			// Driver metadata queries read fields and columns of subqueries
			// and functions in FROM: no attribute notation there.
			same("cat/jdbc-primary-keys", "alice", jdbcPrimaryKeys, "SELECT 'accounts|id|1'"),
			clean("cat/jdbc-index-info", "alice", jdbcIndexInfo, true),
			custom("cat/pgx-load-types", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				types, err := conn.LoadTypes(ctxT(x.t), []string{"accounts", "_accounts"})
				if err != nil {
					return fmt.Errorf("pgx LoadTypes: %v", err)
				}
				for _, typ := range types {
					if typ.Name == "accounts" {
						return nil
					}
				}
				return fmt.Errorf("pgx LoadTypes: no type accounts among %d", len(types))
			}),
			same("cat/information_schema-sequences", "sam",
				"SELECT count(*) FROM information_schema.sequences WHERE sequence_schema = 'mandate' AND start_value IS NULL", "SELECT 0"),
			same("cat/pg_class-readable", "alice", "SELECT relname FROM pg_class WHERE relname = 'customers'", "SELECT 'customers'"),
			refuse("cat/pg_largeobject", "alice", "SELECT data FROM pg_largeobject", stDenied),
			refuse("cat/pg_largeobject_metadata", "alice", "SELECT oid FROM pg_largeobject_metadata", stDenied),
			refuse("cat/lo_get", "alice", "SELECT lo_get(424242)", stDenied),
			refuse("cat/lo_import", "alice", "SELECT lo_import('/etc/passwd')", stDenied),
			refuse("cat/lo_export", "alice", "SELECT lo_export(424242, '/tmp/mandate-lo')", stDenied),
			refuse("cat/loread", "alice", "SELECT loread(lo_open(424242, 262144), 100)", stDenied),
			refuse("cat/lo_from_bytea", "alice", "SELECT lo_from_bytea(0, 'x')", stDenied),
			refuse("cat/pg_ls_dir", "alice", "SELECT pg_ls_dir('.')", stDenied),
			refuse("cat/pg_ls_waldir", "alice", "SELECT * FROM pg_ls_waldir()", stDenied),
			refuse("cat/pg_stat_file", "alice", "SELECT pg_stat_file('postgresql.conf')", stDenied),
			refuse("cat/pg_authid", "alice", "SELECT rolpassword FROM pg_authid", stDenied),
			refuse("cat/pg_shadow", "alice", "SELECT passwd FROM pg_shadow", stDenied),
			refuse("cat/pg_hba_file_rules", "alice", "SELECT * FROM pg_hba_file_rules", stDenied),
			refuse("cat/pg_file_settings", "alice", "SELECT * FROM pg_file_settings", stDenied),
			refuse("cat/mandate-delegations", "alice", "SELECT * FROM mandate.delegations", stDenied),
			refuse("cat/mandate-consents", "dana", "SELECT * FROM mandate.consents", stDenied),
			refuse("cat/mandate-agents", "assistant", "SELECT * FROM mandate.agents", stDenied),
			refuse("cat/mandate-quoted", "alice", `SELECT * FROM "mandate"."consents"`, stDenied),
			{name: "cat/mandate-on-search-path", persona: "alice", setup: []string{"SET search_path = mandate, public"},
				sql: "SELECT * FROM consents", codes: []string{stDenied}},
			refuse("cat/current_setting-token", "bob", "SELECT current_setting('mandate.token')", stDenied),
			custom("cat/token-not-readable", func(x *advCtx) error {
				conn, err := x.as("app")
				if err != nil {
					return err
				}
				tok := x.w.token(x.t, "alice", []string{"bob"}, nil)
				if _, _, err := x.exec("bob", conn, "SET mandate.token = '"+tok+"'"); err != nil {
					return err
				}
				for _, q := range []string{"SHOW mandate.token", "SELECT name, setting FROM pg_settings WHERE name LIKE 'mandate%'",
					"SHOW ALL", "SELECT current_setting('mandate.assumed', true)"} {
					_, _, _ = x.exec("bob", conn, q)
				}
				x.mu.Lock()
				defer x.mu.Unlock()
				for _, s := range x.seen["bob"] {
					if strings.Contains(s, tok[len(tok)-20:]) {
						return fmt.Errorf("the token comes back: %q", clip(s))
					}
				}
				return nil
			}),
			custom("cat/listen-state-channel", func(x *advCtx) error {
				conn, err := x.as("alice")
				if err != nil {
					return err
				}
				_, _, err = x.exec("alice", conn, "LISTEN mandate_state")
				if st := sqlState(err); st == stDenied || st == stUnsupported {
					return nil
				}
				if err := x.w.store.SetConsent(ctxT(x.t), "carol", "analytics", false); err != nil {
					return err
				}
				defer func() { _ = x.w.store.SetConsent(ctxT(x.t), "carol", "analytics", true) }()
				time.Sleep(100 * time.Millisecond)
				_, _, _ = x.exec("alice", conn, "SELECT 1")
				x.mu.Lock()
				defer x.mu.Unlock()
				for _, s := range x.seen["alice"] {
					if strings.HasPrefix(s, "notification mandate_state") {
						return fmt.Errorf("alice hears the policy store's broadcast: %s", s)
					}
				}
				return nil
			}),
		},
	}
}

// statementTextCase prepares something as persona and reads its statement
// text back from a catalog view.
func statementTextCase(x *advCtx, persona string, setup []string, read string) error {
	conn, err := x.as(persona)
	if err != nil {
		return err
	}
	for _, s := range setup {
		if _, _, err := x.exec(persona, conn, s); err != nil {
			return fmt.Errorf("%s: %v", s, err)
		}
	}
	got, _, err := x.exec(persona, conn, read)
	return checkStatementText(got, err)
}

// checkStatementText fails when a statement text shows the injected filter
// (the policy's constants: consenting customers' raw ids, assignments).
func checkStatementText(got []string, err error) error {
	if st := sqlState(err); st == stDenied || st == stUnsupported {
		return nil
	}
	if err != nil {
		return err
	}
	for _, s := range got {
		if strings.Contains(s, "WHERE") && (strings.Contains(s, "_m") || strings.Contains(s, "ANY") || strings.Contains(s, " IN (")) {
			return fmt.Errorf("the statement text is the rewrite with its filter: %q", clip(s))
		}
	}
	return nil
}

// The JDBC driver's DatabaseMetaData.getPrimaryKeys and getIndexInfo (pgjdbc
// 42.x) for table accounts: (keys).x and (…).n are fields of
// information_schema._pg_expandarray's record.
const (
	jdbcPrimaryKeys = `SELECT result.TABLE_NAME, result.COLUMN_NAME, result.KEY_SEQ FROM (SELECT NULL AS TABLE_CAT,
  n.nspname AS TABLE_SCHEM, ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME,
  (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME,
  information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM
  FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid)
  JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid) JOIN pg_catalog.pg_index i ON (a.attrelid = i.indrelid)
  JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid)
  WHERE true AND n.nspname = E'public' AND ct.relname = E'accounts' AND i.indisprimary) result
  WHERE result.A_ATTNUM = (result.KEYS).x ORDER BY result.table_name, result.pk_name, result.key_seq`
	jdbcIndexInfo = `SELECT tmp.TABLE_CAT, tmp.TABLE_SCHEM, tmp.TABLE_NAME, tmp.NON_UNIQUE, tmp.INDEX_QUALIFIER, tmp.INDEX_NAME,
  tmp.TYPE, tmp.ORDINAL_POSITION, trim(both '"' from pg_catalog.pg_get_indexdef(tmp.CI_OID, tmp.ORDINAL_POSITION, false)) AS COLUMN_NAME,
  CASE tmp.AM_NAME WHEN 'btree' THEN CASE tmp.I_INDOPTION[tmp.ORDINAL_POSITION - 1] & 1::smallint WHEN 1 THEN 'D' ELSE 'A' END ELSE NULL END AS ASC_OR_DESC,
  tmp.CARDINALITY, tmp.PAGES, tmp.FILTER_CONDITION
  FROM (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, ct.relname AS TABLE_NAME, NOT i.indisunique AS NON_UNIQUE,
    NULL AS INDEX_QUALIFIER, ci.relname AS INDEX_NAME,
    CASE i.indisclustered WHEN true THEN 1 ELSE CASE am.amname WHEN 'hash' THEN 2 ELSE 3 END END AS TYPE,
    (information_schema._pg_expandarray(i.indkey)).n AS ORDINAL_POSITION, ci.reltuples AS CARDINALITY,
    ci.relpages AS PAGES, pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS FILTER_CONDITION, ci.oid AS CI_OID,
    i.indoption AS I_INDOPTION, am.amname AS AM_NAME
    FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid)
    JOIN pg_catalog.pg_index i ON (ct.oid = i.indrelid) JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid)
    JOIN pg_catalog.pg_am am ON (ci.relam = am.oid)
    WHERE true AND n.nspname = E'public' AND ct.relname = E'accounts') AS tmp
  ORDER BY NON_UNIQUE, TYPE, INDEX_NAME, ORDINAL_POSITION`
)
