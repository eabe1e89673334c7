package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// answer is what a client got for one batch: each message's type in
// order, the rows (columns run together), and the error's SQLSTATE.
type answer struct {
	types string
	rows  []string
	code  string
	msg   string // the first error's message
}

// roundTrip sends msgs on conn's socket, below pgx, and a Sync unless they
// are a simple Query, and reads the answer up to ReadyForQuery.
func roundTrip(t *testing.T, conn *pgx.Conn, msgs ...pgproto3.FrontendMessage) answer {
	t.Helper()
	fe := conn.PgConn().Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if _, simple := msgs[len(msgs)-1].(*pgproto3.Query); !simple {
		fe.Send(&pgproto3.Sync{})
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, fe)
}

// readAnswer reads one answer from fe, up to its ReadyForQuery (not
// counted in its types).
func readAnswer(t *testing.T, fe *pgproto3.Frontend) answer {
	t.Helper()
	a := readUntil(t, fe, 'Z')
	a.types = strings.TrimSuffix(a.types, "Z")
	return a
}

// unnamedQuery is one execution of sql as an unnamed statement, the way
// pgbench -M extended, node-postgres and lib/pq send every statement.
func unnamedQuery(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: sql},
		&pgproto3.Bind{},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
	}
}

func cacheCount(p *testProxy) (hits, prepared float64) {
	return testutil.ToFloat64(p.srv.metrics.stmtCacheHit), testutil.ToFloat64(p.srv.metrics.stmtCachePrepared)
}

// TestStatementCacheAnswersAsPostgres: an unnamed Parse of a rewritten
// statement seen twice is prepared upstream by mandate, later ones are
// served by it, and the client cannot tell: the same messages, the same
// rows, each time.
func TestStatementCacheAnswersAsPostgres(t *testing.T) {
	w, _, bob := delegatedBob(t)
	const q = "SELECT id FROM transactions ORDER BY id"
	want := roundTrip(t, bob, unnamedQuery(q)...)
	if want.code != "" || len(want.rows) == 0 || want.types[:3] != "12T" {
		t.Fatalf("first execution: %+v", want)
	}
	hits0, prepared0 := cacheCount(w.p)
	for i := range 4 {
		got := roundTrip(t, bob, unnamedQuery(q)...)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("execution %d: got %+v, want %+v", i+2, got, want)
		}
	}
	if hits, prepared := cacheCount(w.p); hits-hits0 != 3 || prepared-prepared0 != 1 {
		t.Fatalf("5 Parses of one text: %v prepared and %v served by the cache, want 1 (at the second) and 3",
			prepared-prepared0, hits-hits0)
	}
	// Describe of the unnamed statement, and a Bind of it in a later batch
	// without a Parse, reach the cached statement.
	got := roundTrip(t, bob, &pgproto3.Parse{Query: q}, &pgproto3.Describe{ObjectType: 'S'})
	if got.types != "1tT" {
		t.Fatalf("Describe of the unnamed statement: %+v", got)
	}
	got = roundTrip(t, bob, &pgproto3.Bind{}, &pgproto3.Execute{})
	if got.code != "" || fmt.Sprint(got.rows) != fmt.Sprint(want.rows) {
		t.Fatalf("Bind of the unnamed statement alone: %+v", got)
	}
	// A simple Query drops the unnamed statement, as in PostgreSQL.
	if _, err := bob.Exec(ctxT(t), "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, bob, &pgproto3.Bind{}, &pgproto3.Execute{}); got.code != "26000" {
		t.Fatalf("Bind of the unnamed statement after a simple Query: want 26000, got %+v", got)
	}
	// Three Parses of a new text in one batch: the second prepares it, and
	// the third cannot wait for that answer and goes as it is.
	const q2 = "SELECT id FROM accounts ORDER BY id"
	three := roundTrip(t, bob, slices.Concat(unnamedQuery(q2), unnamedQuery(q2), unnamedQuery(q2))...)
	one := roundTrip(t, bob, unnamedQuery(q2)...)
	if one.code != "" || three.types != strings.Repeat(one.types, 3) || fmt.Sprint(three.rows) != fmt.Sprint(slices.Concat(one.rows, one.rows, one.rows)) {
		t.Fatalf("three Parses of one text in a batch: %+v; one: %+v", three, one)
	}
}

// TestStatementCacheAfterRevocation: a cached statement is the rewrite of
// the grants it was made under; after a revocation, neither a new Parse
// nor a Bind of the unnamed statement may reach it.
func TestStatementCacheAfterRevocation(t *testing.T) {
	w, id, bob := delegatedBob(t)
	const q = "SELECT id FROM transactions"
	for range 3 {
		if got := roundTrip(t, bob, unnamedQuery(q)...); got.code != "" || len(got.rows) == 0 {
			t.Fatalf("bob before revocation: %+v", got)
		}
	}
	if hits, _ := cacheCount(w.p); hits == 0 {
		t.Fatal("the second Parse was not served by the cache")
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, bob, &pgproto3.Bind{}, &pgproto3.Execute{}); got.code != codeInsufficientPriv || len(got.rows) != 0 {
		t.Fatalf("Bind of the cached unnamed statement after revocation: want 42501, got %+v", got)
	}
	if got := roundTrip(t, bob, unnamedQuery(q)...); got.code != codeInsufficientPriv || len(got.rows) != 0 {
		t.Fatalf("Parse after revocation: want 42501, got %+v", got)
	}
}

// TestStatementCacheNamesAreMandates: a client that guesses a cached
// statement's name cannot run it, make it again or drop it from under
// mandate: after a revocation, nothing under such a name runs the old
// rewrite.
func TestStatementCacheNamesAreMandates(t *testing.T) {
	w, id, bob := delegatedBob(t)
	const q = "SELECT id FROM transactions"
	for range 3 {
		roundTrip(t, bob, unnamedQuery(q)...)
	}
	// Names a connection's cache has used so far; pooled connections may
	// have counted further, which only makes the guesses miss.
	var names []string
	for i := 1; i <= 8; i++ {
		names = append(names, fmt.Sprintf("%s%d", stmtPrefix, i))
	}
	for _, n := range names {
		if got := roundTrip(t, bob, &pgproto3.Bind{PreparedStatement: n}, &pgproto3.Execute{}); got.code != "26000" || len(got.rows) != 0 {
			t.Fatalf("Bind of mandate's statement %s: want 26000, got %+v", n, got)
		}
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	mine := func(what string, a answer) {
		t.Helper()
		for _, r := range a.rows {
			if r != "mine" {
				t.Fatalf("%s ran another statement: %+v", what, a)
			}
		}
	}
	for _, n := range names {
		mine("Parse and Bind of "+n, roundTrip(t, bob,
			&pgproto3.Parse{Name: n, Query: "SELECT 'mine'"}, &pgproto3.Bind{PreparedStatement: n}, &pgproto3.Execute{}))
		sql := pgx.Identifier{n}.Sanitize()
		mine("PREPARE and EXECUTE of "+n, roundTrip(t, bob,
			&pgproto3.Query{String: "PREPARE " + sql + " AS SELECT 'mine'"}))
		a := roundTrip(t, bob, &pgproto3.Query{String: "EXECUTE " + sql})
		mine("EXECUTE of "+n, a)
	}
	if got := roundTrip(t, bob, unnamedQuery(q)...); got.code != codeInsufficientPriv {
		t.Fatalf("Parse after revocation: want 42501, got %+v", got)
	}
}

// TestStatementCacheNamesStayHidden: PostgreSQL's errors about a cached
// statement name the unnamed statement the client sent, as they would
// without mandate, not mandate's name for it (red team round 10, K2).
func TestStatementCacheNamesStayHidden(t *testing.T) {
	w, _, bob := delegatedBob(t)
	const q = "SELECT id FROM transactions WHERE id = $1"
	one := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}}
	for range 3 {
		if got := roundTrip(t, bob, one...); got.code != "" {
			t.Fatalf("unnamed statement: %+v", got)
		}
	}
	if hits, _ := cacheCount(w.p); hits == 0 {
		t.Fatal("the statement was not served from the cache: this test tests nothing")
	}
	got := roundTrip(t, bob, &pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{})
	const want = `bind message supplies 0 parameters, but prepared statement "" requires 1`
	if got.code != codeProtocolViolation || got.msg != want {
		t.Fatalf("Bind with too few parameters: got %s %q, want 08P01 %q", got.code, got.msg, want)
	}
}

// TestStatementCacheFollowsDeallocation: DEALLOCATE ALL and DISCARD ALL
// drop mandate's statements with the client's; the next Parse prepares
// them again instead of naming what is gone.
func TestStatementCacheFollowsDeallocation(t *testing.T) {
	w := startBank(t)
	bob := w.connect(t, "alice") // logged in as herself: DISCARD ALL keeps who she is
	const q = "SELECT id FROM transactions ORDER BY id"
	want := roundTrip(t, bob, unnamedQuery(q)...)
	for _, drop := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
		roundTrip(t, bob, unnamedQuery(q)...) // prepares it
		roundTrip(t, bob, unnamedQuery(q)...) // served by the cache
		if got := roundTrip(t, bob, &pgproto3.Query{String: drop}); got.code != "" {
			t.Fatalf("%s: %+v", drop, got)
		}
		for range 3 {
			if got := roundTrip(t, bob, unnamedQuery(q)...); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after %s: got %+v, want %+v", drop, got, want)
			}
		}
	}
	// The same through the extended protocol, between a Parse served by the
	// cache and a Describe of the unnamed statement.
	roundTrip(t, bob, unnamedQuery(q)...)
	got := roundTrip(t, bob, &pgproto3.Parse{Query: q}, &pgproto3.Parse{Name: "dealloc", Query: "DEALLOCATE ALL"},
		&pgproto3.Bind{PreparedStatement: "dealloc"}, &pgproto3.Execute{}, &pgproto3.Describe{ObjectType: 'S'})
	if got.code != "" || got.types != "112CtT" {
		t.Fatalf("Describe of the unnamed statement after DEALLOCATE ALL: %+v", got)
	}
	// PostgreSQL's DEALLOCATE ALL and DISCARD ALL leave the unnamed
	// statement: a Bind of it still runs it.
	for _, drop := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
		roundTrip(t, bob, unnamedQuery(q)...) // served by the cache
		if got := roundTrip(t, bob, &pgproto3.Parse{Name: "drop", Query: drop}, &pgproto3.Bind{PreparedStatement: "drop"},
			&pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "drop"}); got.code != "" {
			t.Fatalf("%s: %+v", drop, got)
		}
		if got := roundTrip(t, bob, &pgproto3.Bind{}, &pgproto3.Execute{}); got.code != "" || fmt.Sprint(got.rows) != fmt.Sprint(want.rows) {
			t.Fatalf("Bind of the unnamed statement after %s: got %+v, want %v", drop, got, want.rows)
		}
	}
	// A DEALLOCATE ALL that fails upstream (in an aborted transaction)
	// leaves the statements there: preparing one again under its old name
	// would fail, and name it to the client.
	roundTrip(t, bob, unnamedQuery(q)...)
	roundTrip(t, bob, unnamedQuery(q)...) // served by the cache
	named := func(name, sql string) answer {
		return roundTrip(t, bob, &pgproto3.Parse{Name: name, Query: sql}, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{})
	}
	named("b", "BEGIN")
	if got := named("z", "SELECT 1/0"); got.code != "22012" {
		t.Fatalf("SELECT 1/0: %+v", got)
	}
	if got := named("d", "DEALLOCATE ALL"); got.code != "25P02" {
		t.Fatalf("DEALLOCATE ALL in an aborted transaction: %+v", got)
	}
	named("r", "ROLLBACK")
	if got := roundTrip(t, bob, &pgproto3.Describe{ObjectType: 'S'}); got.code != "" || got.types != "tT" {
		t.Fatalf("Describe of the unnamed statement after a DEALLOCATE ALL that failed: %+v", got)
	}
}

// TestStatementCacheEvictsAndFails: more texts than the cache holds (3 in
// tests) are served in turn, each right; a text whose preparation fails
// gives the client the error its Parse would have, every time.
func TestStatementCacheEvictsAndFails(t *testing.T) {
	w, _, bob := delegatedBob(t)
	texts := []string{
		"SELECT id FROM transactions ORDER BY id",
		"SELECT id FROM accounts ORDER BY id",
		"SELECT count(*) FROM transactions",
		"SELECT id FROM transactions WHERE category = 'tax' ORDER BY id",
		"SELECT max(id) FROM accounts",
	}
	want := map[string]answer{}
	for _, q := range texts {
		want[q] = roundTrip(t, bob, unnamedQuery(q)...)
		if want[q].code != "" {
			t.Fatalf("%s: %+v", q, want[q])
		}
	}
	_, prepared0 := cacheCount(w.p)
	for range 3 {
		for _, q := range texts {
			if got := roundTrip(t, bob, unnamedQuery(q)...); fmt.Sprint(got) != fmt.Sprint(want[q]) {
				t.Fatalf("%s: got %+v, want %+v", q, got, want[q])
			}
		}
	}
	// All 5 are prepared in the first round; an evicted one is seen once
	// more and prepared again at the next sighting.
	if _, prepared := cacheCount(w.p); prepared-prepared0 <= 5 {
		t.Fatalf("5 texts in turn through a cache of 3: %v statements prepared, want evicted ones prepared again", prepared-prepared0)
	}
	for range 3 {
		got := roundTrip(t, bob, unnamedQuery("SELECT id FROM transactions WHERE id = 'not a number'")...)
		if got.code != "22P02" || got.types != "E" {
			t.Fatalf("a Parse that fails upstream: want one 22P02, got %+v", got)
		}
	}
	if got := roundTrip(t, bob, unnamedQuery(texts[0])...); fmt.Sprint(got) != fmt.Sprint(want[texts[0]]) {
		t.Fatalf("after the failures: got %+v", got)
	}
}

// TestInjectedAnswersKeepTheirPlace: mandate's hidden answers are told
// from the client's by their place, not by their type alone: a refusal
// parsed ahead of an Execute, after a Parse of the client's in the same
// batch, leaves the client its ParseComplete and the error in order.
func TestInjectedAnswersKeepTheirPlace(t *testing.T) {
	_, _, bob := delegatedBob(t)
	got := roundTrip(t, bob, &pgproto3.Parse{Name: "mine", Query: "SELECT 1"}, &pgproto3.Execute{Portal: "nobody_bound_this"})
	if got.types != "1E" || got.code != "34000" {
		t.Fatalf("a Parse, then an Execute mandate refuses: want ParseComplete and 34000, got %+v", got)
	}
	if got := roundTrip(t, bob, &pgproto3.Bind{PreparedStatement: "mine"}, &pgproto3.Execute{}); got.types != "2DC" {
		t.Fatalf("the statement parsed before the refusal: %+v", got)
	}
}

// TestStatementCacheFailedParseDropsUnnamed: a Parse that fails leaves no
// unnamed statement behind, as in PostgreSQL; the statement the cache
// prepares beside it must not make the client's Parse be skipped instead,
// leaving the previous unnamed statement (made under the grants of its
// time) to a later Bind.
func TestStatementCacheFailedParseDropsUnnamed(t *testing.T) {
	w := startBank(t)
	alice := w.connect(t, "alice")
	bad := &pgproto3.Parse{Query: "SELECT id FROM transactions WHERE id = 'not a number'"}
	for i := range 2 { // the second time, mandate prepares the failing text too
		if got := roundTrip(t, alice, unnamedQuery("SELECT id FROM transactions")...); got.code != "" || len(got.rows) == 0 {
			t.Fatalf("alice's statement: %+v", got)
		}
		if got := roundTrip(t, alice, bad); got.code != "22P02" {
			t.Fatalf("a Parse that fails upstream: want 22P02, got %+v", got)
		}
		if got := roundTrip(t, alice, &pgproto3.Bind{}, &pgproto3.Execute{}); got.code != "26000" || len(got.rows) != 0 {
			t.Fatalf("round %d: Bind of the unnamed statement after its Parse failed: want 26000, got %+v", i+1, got)
		}
	}
}

// TestStatementCacheLeavesOneOffTexts: a client that inlines its constants
// (JDBC's Statement over the extended protocol) sends each text once;
// preparing each would double PostgreSQL's work and churn the cache.
func TestStatementCacheLeavesOneOffTexts(t *testing.T) {
	w, _, bob := delegatedBob(t)
	_, prepared0 := cacheCount(w.p)
	for i := range 10 {
		if got := roundTrip(t, bob, unnamedQuery(fmt.Sprintf("SELECT id FROM transactions WHERE id > %d", i))...); got.code != "" {
			t.Fatal(got)
		}
	}
	if _, prepared := cacheCount(w.p); prepared != prepared0 {
		t.Fatalf("10 texts sent once each: %v prepared, want none", prepared-prepared0)
	}
}

// TestStatementCacheFollowsLiteralSettings (red team round 34, F1):
// PostgreSQL reads a statement's constants when it analyses it ('2024-03-03'
// compared with a timestamptz is midnight in the TimeZone of that moment),
// so a statement mandate prepared under one TimeZone or DateStyle must not
// answer a Parse or a simple query made under another; a rollback that
// undoes the SET brings the first one back.
func TestStatementCacheFollowsLiteralSettings(t *testing.T) {
	w := startBank(t)
	const (
		zoned = "SELECT id FROM transactions WHERE id > 0 AND booked_at >= '2024-03-03' AND booked_at < '2024-03-04'"
		dated = "SELECT id FROM transactions WHERE id > 0 AND booked_at::date BETWEEN '01/05/2024' AND '05/01/2024'"
	)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		for _, c := range []struct{ query, before, after string }{
			{zoned, "SET timezone = 'UTC'", "SET timezone = 'Pacific/Kiritimati'"},
			{dated, "SET datestyle = 'ISO, MDY'", "SET datestyle = 'ISO, DMY'"},
		} {
			// What a session that never ran it before gets under each.
			want := map[string][]string{}
			for _, set := range []string{c.before, c.after} {
				fresh := w.connect(t, "alice")
				if _, err := fresh.Exec(ctxT(t), set); err != nil {
					t.Fatal(err)
				}
				want[set] = mustRows(t, fresh, c.query, mode)
			}
			if slices.Equal(want[c.before], want[c.after]) {
				t.Fatalf("%s: the same rows under both settings (%q): the test proves nothing", c.query, want[c.before])
			}
			alice := w.connect(t, "alice")
			for _, step := range []struct{ sql, want string }{
				{c.before, ""}, {"", c.before}, {"", c.before}, {"", c.before},
				{c.after, ""}, {"", c.after},
				{"BEGIN", ""}, {strings.Replace(c.before, "SET", "SET LOCAL", 1), ""}, {"", c.before}, {"ROLLBACK", ""}, {"", c.after},
			} {
				if step.sql != "" {
					if _, err := alice.Exec(ctxT(t), step.sql); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if got := mustRows(t, alice, c.query, mode); !slices.Equal(got, want[step.want]) {
					t.Fatalf("%v, %s, under %q: rows %q, want %q", mode, c.query, step.want, got, want[step.want])
				}
			}
		}
	}
}

// TestStatementCacheBehindUnansweredSegments (red team round 35, F1): the
// settings that key the cache are a guess while earlier segments are
// unanswered (a RESET ALL behind an error never runs), so a statement sent
// then is not served from the cache.
func TestStatementCacheBehindUnansweredSegments(t *testing.T) {
	w := startBank(t)
	alice := w.connect(t, "alice")
	const q = "SELECT id, opened_at < '2019-05-01 12:00' FROM accounts WHERE id = 101"
	utc := roundTrip(t, alice, &pgproto3.Query{String: q}) // the session's default zone (the cluster's, UTC)
	for range 3 {
		roundTrip(t, alice, &pgproto3.Query{String: q})
	}
	roundTrip(t, alice, &pgproto3.Query{String: "SET TimeZone = 'Asia/Tokyo'"})
	tokyo := roundTrip(t, alice, &pgproto3.Query{String: q})
	if slices.Equal(utc.rows, tokyo.rows) {
		t.Fatalf("the same rows in both zones (%q): the test proves nothing", utc.rows)
	}
	fe := alice.PgConn().Frontend()
	// Slow to fail, so that the next Query is decided before its answer.
	fe.Send(&pgproto3.Query{String: "SELECT 1/(count(*) - count(*)) FROM generate_series(1, 3000000); RESET ALL"})
	fe.Send(&pgproto3.Query{String: q})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if a := readAnswer(t, fe); a.code != "22012" {
		t.Fatalf("SELECT 1/(…); RESET ALL: %+v", a)
	}
	if a := readAnswer(t, fe); !slices.Equal(a.rows, tokyo.rows) {
		t.Fatalf("behind a RESET ALL that never ran: rows %q, want Tokyo's %q (UTC's %q)", a.rows, tokyo.rows, utc.rows)
	}
}

// TestStatementCacheFoldedSettings (red team round 35, F2): a generic plan
// folds immutable functions whose result follows a setting (float8out and
// extra_float_digits, byteaout and bytea_output): after a SET, not served
// from a statement planned before.
func TestStatementCacheFoldedSettings(t *testing.T) {
	w := startBank(t)
	const q = "SELECT id, (1::float8/3)::text, 'ab'::bytea::text FROM accounts WHERE id = 101"
	alice := w.connect(t, "alice")
	for range 8 { // past PostgreSQL's five custom plans
		mustRows(t, alice, q, pgx.QueryExecModeSimpleProtocol)
	}
	const set = "SET extra_float_digits = 0; SET bytea_output = escape"
	if _, err := alice.Exec(ctxT(t), set); err != nil {
		t.Fatal(err)
	}
	fresh := w.connect(t, "alice")
	if _, err := fresh.Exec(ctxT(t), set); err != nil {
		t.Fatal(err)
	}
	if got, want := mustRows(t, alice, q, pgx.QueryExecModeSimpleProtocol), mustRows(t, fresh, q, pgx.QueryExecModeSimpleProtocol); !slices.Equal(got, want) {
		t.Fatalf("after %s: %q, want %q", set, got, want)
	}
}

// TestStatementCacheAfterTypeChange (red team round 35, F3): once the owner
// changes a column's type, a cached statement fails with "cached plan must
// not change result type"; PostgreSQL analyses an unnamed Parse or a
// simple query afresh, so the cache must not fail it again.
func TestStatementCacheAfterTypeChange(t *testing.T) {
	w := startBank(t)
	const q = "SELECT id, balance FROM accounts WHERE id = 101"
	alice := w.connect(t, "alice")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		for range 3 {
			mustRows(t, alice, q, mode)
		}
	}
	if _, err := w.owner.Exec(ctxT(t), "ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(16,2)"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		_, _ = rows(t, alice, q, mode) // may fail once: the cached plan's news
		if _, err := rows(t, alice, q, mode); err != nil {
			t.Fatalf("%v, again after the type change: %v", mode, err)
		}
	}
}
