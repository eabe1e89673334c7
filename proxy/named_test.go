package proxy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Named objects whose drop, creation or binding never ran upstream (an
// earlier error in the transaction or the batch, a statement only parsed),
// and portals read on after a revocation: what runs must always be what
// mandate decided under the grants in force.

// readUntil reads an answer from fe, below pgx, up to the first message
// of type stop.
func readUntil(t *testing.T, fe *pgproto3.Frontend, stop byte) answer {
	t.Helper()
	var a answer
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		wire, err := msg.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
			continue // asynchronous: not part of the answer
		case *pgproto3.DataRow:
			a.rows = append(a.rows, string(slices.Concat(m.Values...)))
		case *pgproto3.ErrorResponse:
			if a.code == "" {
				a.code, a.msg = m.Code, m.Message
			}
		}
		a.types += string(wire[0])
		if wire[0] == stop {
			return a
		}
	}
}

// send writes msgs on conn's socket at once, below pgx.
func send(t *testing.T, conn *pgx.Conn, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	fe := conn.PgConn().Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
}

// pipeline sends msgs at once and reads one answer per Query or Sync.
func pipeline(t *testing.T, conn *pgx.Conn, msgs ...pgproto3.FrontendMessage) []answer {
	t.Helper()
	send(t, conn, msgs...)
	var out []answer
	for _, m := range msgs {
		switch m.(type) {
		case *pgproto3.Query, *pgproto3.Sync:
			out = append(out, readUntil(t, conn.PgConn().Frontend(), 'Z'))
		}
	}
	return out
}

// queries are simple Query messages, one per text.
func queries(texts ...string) []pgproto3.FrontendMessage {
	var out []pgproto3.FrontendMessage
	for _, s := range texts {
		out = append(out, &pgproto3.Query{String: s})
	}
	return out
}

// wantRefused fails unless a refused the statement with one of codes and
// returned no row.
func wantRefused(t *testing.T, what string, a answer, codes ...string) {
	t.Helper()
	if len(a.rows) > 0 || !slices.Contains(codes, a.code) {
		t.Errorf("%s: want one of %v and no rows, got %q and %d rows", what, codes, a.code, len(a.rows))
	}
}

// TestDropsThatNeverRanAfterRevocation: a DEALLOCATE, CLOSE or DISCARD ALL
// that PostgreSQL never runs leaves the statement and the cursor in place.
// A PREPARE or DECLARE of the name then fails upstream, and EXECUTE or
// FETCH runs the old object: it must be decided as the old one (refused
// after the revocation), never as the harmless text that failed.
func TestDropsThatNeverRanAfterRevocation(t *testing.T) {
	cases := []struct {
		name  string
		drops []pgproto3.FrontendMessage
	}{
		{"in an aborted block", queries("BEGIN", "SELECT 1/0", "DEALLOCATE p", "CLOSE c", "ROLLBACK")},
		{"after an error in the same query", queries("SELECT 1/0; DEALLOCATE p; CLOSE c")},
		{"DISCARD ALL in a block", queries("BEGIN", "DISCARD ALL", "ROLLBACK")},
		{"DISCARD ALL only parsed", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "DISCARD ALL"}, &pgproto3.Sync{}}},
		{"DISCARD ALL executed in a block", append(queries("BEGIN"),
			&pgproto3.Parse{Query: "DISCARD ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Query{String: "ROLLBACK"})},
		{"only parsed", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "d", Query: "DEALLOCATE p"}, &pgproto3.Parse{Name: "cl", Query: "CLOSE c"}, &pgproto3.Sync{}}},
		{"only bound", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "d", Query: "DEALLOCATE p"}, &pgproto3.Bind{PreparedStatement: "d"},
			&pgproto3.Parse{Name: "cl", Query: "CLOSE c"}, &pgproto3.Bind{PreparedStatement: "cl"}, &pgproto3.Sync{}}},
		{"skipped after an error in the batch", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "DEALLOCATE p"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "CLOSE c"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, id, bob := delegatedBob(t)
			for _, sql := range []string{
				"PREPARE p AS SELECT id FROM transactions",
				"BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT id FROM transactions; COMMIT",
			} {
				if a := roundTrip(t, bob, &pgproto3.Query{String: sql}); a.code != "" {
					t.Fatalf("%s: %s", sql, a.code)
				}
			}
			if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
				t.Fatal(err)
			}
			pipeline(t, bob, c.drops...)
			for _, sql := range []string{"PREPARE p AS SELECT 1", "DECLARE c CURSOR WITH HOLD FOR SELECT 1"} {
				if a := roundTrip(t, bob, &pgproto3.Query{String: sql}); a.code == "" {
					t.Fatalf("%s succeeded: the old object was dropped after all", sql)
				}
			}
			wantRefused(t, "EXECUTE p", roundTrip(t, bob, &pgproto3.Query{String: "EXECUTE p"}), codeInsufficientPriv, "42P05")
			wantRefused(t, "FETCH ALL FROM c", roundTrip(t, bob, &pgproto3.Query{String: "FETCH ALL FROM c"}), codeInsufficientPriv, "42P03")
			wantRefused(t, "MOVE ALL IN c", roundTrip(t, bob, &pgproto3.Query{String: "MOVE ALL IN c"}), codeInsufficientPriv, "42P03")
			wantRefused(t, "Bind of p", roundTrip(t, bob, &pgproto3.Bind{PreparedStatement: "p"}, &pgproto3.Execute{}), codeInsufficientPriv, "42P05")
			wantRefused(t, "Execute of c", roundTrip(t, bob, &pgproto3.Execute{Portal: "c"}), codeInsufficientPriv, "42P03")
		})
	}
}

// TestPipelinedDropThatMayFail: a DEALLOCATE in an earlier segment, not
// answered yet, may fail; a PREPARE of the name in a later one then fails
// too and leaves the old statement. Until the answers say which, EXECUTE
// must not be decided as the new text. Once they have come, the name is
// what PostgreSQL holds.
func TestPipelinedDropThatMayFail(t *testing.T) {
	w, id, bob := delegatedBob(t)
	if a := roundTrip(t, bob, &pgproto3.Query{String: "PREPARE p AS SELECT id FROM transactions"}); a.code != "" {
		t.Fatal(a.code)
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	if a := roundTrip(t, bob, &pgproto3.Query{String: "BEGIN; SELECT 1/0"}); a.code != "22012" {
		t.Fatalf("BEGIN; SELECT 1/0: %q", a.code)
	}
	got := pipeline(t, bob, queries("DEALLOCATE p", "ROLLBACK", "PREPARE p AS SELECT 1", "EXECUTE p")...)
	if got[0].code == "" || got[2].code == "" {
		t.Fatalf("DEALLOCATE in an aborted block or PREPARE of a taken name succeeded: %+v", got)
	}
	wantRefused(t, "pipelined EXECUTE p", got[3], codeInsufficientPriv, "42P05")
	wantRefused(t, "EXECUTE p once answered", roundTrip(t, bob, &pgproto3.Query{String: "EXECUTE p"}), codeInsufficientPriv, "42P05")

	// A drop that runs frees the name for the next PREPARE, pipelined or not.
	got = pipeline(t, bob, queries("DEALLOCATE p", "PREPARE p AS SELECT 2", "EXECUTE p")...)
	if got[0].code != "" || got[1].code != "" {
		t.Fatalf("DEALLOCATE and PREPARE: %+v", got)
	}
	if got[2].code != "" && got[2].code != "42P05" {
		t.Fatalf("pipelined EXECUTE of the new statement: %+v", got[2])
	}
	if a := roundTrip(t, bob, &pgproto3.Query{String: "EXECUTE p"}); a.code != "" || !slices.Equal(a.rows, []string{"2"}) {
		t.Fatalf("EXECUTE of the new statement once answered: %+v", a)
	}
	if a := roundTrip(t, bob, &pgproto3.Query{String: "DEALLOCATE p; PREPARE p AS SELECT 3; EXECUTE p"}); a.code != "" || !slices.Equal(a.rows, []string{"3"}) {
		t.Fatalf("DEALLOCATE, PREPARE and EXECUTE in one query: %+v", a)
	}
}

// TestSkippedDiscardAllThenWriteUnderAnotherIdentity: a write prepared
// for one end user must not run, through a DISCARD ALL that never ran, in
// a session acting for another.
func TestSkippedDiscardAllThenWriteUnderAnotherIdentity(t *testing.T) {
	w := startBank(t)
	app := w.assume(t, "alice", nil, nil)
	carol := "SET mandate.token = '" + w.token(t, "carol", nil, nil) + "'"
	for _, sql := range []string{
		"PREPARE w AS UPDATE customers SET email = 'written-for-carol@x' RETURNING id",
		carol, "BEGIN", "DISCARD ALL", "ROLLBACK", carol,
	} {
		roundTrip(t, app, &pgproto3.Query{String: sql})
	}
	if a := roundTrip(t, app, &pgproto3.Query{String: "PREPARE w AS SELECT 1"}); a.code == "" {
		t.Fatal("PREPARE w succeeded: the old statement was dropped after all")
	}
	wantRefused(t, "EXECUTE w as carol", roundTrip(t, app, &pgproto3.Query{String: "EXECUTE w"}), codeInsufficientPriv, "42P05")
	var email string
	if err := w.owner.QueryRow(ctxT(t), "SELECT email FROM customers WHERE id = 1").Scan(&email); err != nil {
		t.Fatal(err)
	}
	if email != "alice@example.com" {
		t.Fatalf("alice's row was written from carol's session: email %q", email)
	}
}

// TestCursorOfPipelinedTransactionKept: a cursor is open until the
// upstream says its transaction ended, not until any transaction ends: an
// idle answer to an earlier query, pipelined, must not make mandate forget
// it.
func TestCursorOfPipelinedTransactionKept(t *testing.T) {
	w, id, bob := delegatedBob(t)
	got := pipeline(t, bob, queries("SELECT count(*) FROM generate_series(1, 3000000)", "BEGIN; DECLARE c CURSOR FOR SELECT id FROM transactions; SAVEPOINT a")...)
	if got[0].code != "" || got[1].code != "" {
		t.Fatalf("setup: %+v", got)
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	if a := roundTrip(t, bob, &pgproto3.Query{String: "DECLARE c CURSOR FOR SELECT 1"}); a.code == "" {
		t.Fatal("a second DECLARE of an open cursor succeeded")
	}
	if a := roundTrip(t, bob, &pgproto3.Query{String: "ROLLBACK TO SAVEPOINT a"}); a.code != "" {
		t.Fatal(a.code)
	}
	wantRefused(t, "FETCH ALL FROM c", roundTrip(t, bob, &pgproto3.Query{String: "FETCH ALL FROM c"}), codeInsufficientPriv, "42P03")
}

// TestSkippedCloseOfProtocolStatement: a protocol Close and Parse skipped
// after an error in their batch leave the old statement in place; a Bind
// of the name runs it, so it must not be decided as the skipped Parse.
func TestSkippedCloseOfProtocolStatement(t *testing.T) {
	w, id, bob := delegatedBob(t)
	if a := roundTrip(t, bob, &pgproto3.Parse{Name: "s", Query: "SELECT id FROM transactions"}); a.code != "" {
		t.Fatal(a.code)
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	a := roundTrip(t, bob, &pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Parse{Name: "s", Query: "SELECT 1"})
	if a.code != "22012" {
		t.Fatalf("the failing batch: %+v", a)
	}
	wantRefused(t, "EXECUTE s", roundTrip(t, bob, &pgproto3.Query{String: "EXECUTE s"}), codeInsufficientPriv, "42P05")
	wantRefused(t, "Bind of s", roundTrip(t, bob, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}), codeInsufficientPriv, "26000")
	// The refusal dropped the old statement: s may be prepared again.
	if a := roundTrip(t, bob, &pgproto3.Parse{Name: "s", Query: "SELECT 1"}, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}); a.code != "" || !slices.Equal(a.rows, []string{"1"}) {
		t.Fatalf("s prepared again: %+v", a)
	}
}

// TestSkippedRepreparationUnderAnotherIdentity: after SET mandate.token a
// Bind re-prepares the statement under the new identity; when that is
// skipped (an earlier error in the batch), the upstream keeps the old
// rewrite, and the next Bind must re-prepare again.
func TestSkippedRepreparationUnderAnotherIdentity(t *testing.T) {
	w := startBank(t)
	app := w.assume(t, "alice", nil, nil)
	if a := roundTrip(t, app, &pgproto3.Parse{Name: "s", Query: "SELECT id FROM accounts"}); a.code != "" {
		t.Fatal(a.code)
	}
	alice := roundTrip(t, app, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{})
	roundTrip(t, app, &pgproto3.Query{String: "SET mandate.token = '" + w.token(t, "carol", nil, nil) + "'"})
	a := roundTrip(t, app, &pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{})
	if a.code != "22012" {
		t.Fatalf("the failing batch: %+v", a)
	}
	got := roundTrip(t, app, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{})
	want := mustRows(t, w.owner, carolAccounts)
	slices.Sort(got.rows)
	if got.code != "" || !slices.Equal(got.rows, want) {
		t.Fatalf("Bind of s as carol: got %+v, want carol's %q (alice's were %q)", got, want, alice.rows)
	}
}

// TestSkippedBindOverSuspendedPortal: a Bind skipped after an error leaves
// the portal that had the name; once the transaction goes on (ROLLBACK TO
// SAVEPOINT), an Execute of the name reads that portal, so it must not be
// decided as the skipped Bind's statement.
func TestSkippedBindOverSuspendedPortal(t *testing.T) {
	w, id, bob := delegatedBob(t)
	roundTrip(t, bob, &pgproto3.Query{String: "BEGIN"})
	a := roundTrip(t, bob, &pgproto3.Parse{Name: "s1", Query: "SELECT id FROM transactions ORDER BY id"},
		&pgproto3.Bind{PreparedStatement: "s1", DestinationPortal: "x"}, &pgproto3.Execute{Portal: "x", MaxRows: 1})
	if a.code != "" || len(a.rows) != 1 {
		t.Fatalf("first row: %+v", a)
	}
	roundTrip(t, bob, &pgproto3.Query{String: "SAVEPOINT a"})
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	a = roundTrip(t, bob, &pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Close{ObjectType: 'P', Name: "x"}, &pgproto3.Parse{Name: "s2", Query: "SELECT 1"},
		&pgproto3.Bind{PreparedStatement: "s2", DestinationPortal: "x"})
	if a.code != "22012" {
		t.Fatalf("the failing batch: %+v", a)
	}
	roundTrip(t, bob, &pgproto3.Query{String: "ROLLBACK TO SAVEPOINT a"})
	wantRefused(t, "Execute of x", roundTrip(t, bob, &pgproto3.Execute{Portal: "x"}), codeInsufficientPriv, "42P03")
	roundTrip(t, bob, &pgproto3.Query{String: "ROLLBACK TO SAVEPOINT a"})
	wantRefused(t, "FETCH ALL FROM x", roundTrip(t, bob, &pgproto3.Query{String: "FETCH ALL FROM x"}), codeInsufficientPriv, "42P03")
}

// TestPortalOfSQLPreparedStatementAfterRevocation: a portal bound to a
// statement made with SQL PREPARE, left suspended, is read on in a later
// batch: after a revocation that must be refused like a FETCH.
func TestPortalOfSQLPreparedStatementAfterRevocation(t *testing.T) {
	w, id, bob := delegatedBob(t)
	roundTrip(t, bob, &pgproto3.Query{String: "PREPARE p AS SELECT id FROM transactions ORDER BY id"})
	roundTrip(t, bob, &pgproto3.Query{String: "BEGIN"})
	a := roundTrip(t, bob, &pgproto3.Bind{PreparedStatement: "p", DestinationPortal: "x"}, &pgproto3.Execute{Portal: "x", MaxRows: 1})
	if a.code != "" || len(a.rows) != 1 {
		t.Fatalf("first row: %+v", a)
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "Execute of x after the revocation", roundTrip(t, bob, &pgproto3.Execute{Portal: "x"}), codeInsufficientPriv)
}

// TestPortalHeldOpenWithFlushAfterRevocation: a batch held open with Flush
// (no Sync) keeps its portal; an Execute of it after a revocation must be
// refused like a FETCH, in the same batch too.
func TestPortalHeldOpenWithFlushAfterRevocation(t *testing.T) {
	w, id, bob := delegatedBob(t)
	send(t, bob, &pgproto3.Parse{Name: "s1", Query: "SELECT id FROM transactions ORDER BY id"},
		&pgproto3.Bind{PreparedStatement: "s1", DestinationPortal: "y"}, &pgproto3.Execute{Portal: "y", MaxRows: 1}, &pgproto3.Flush{})
	if a := readUntil(t, bob.PgConn().Frontend(), 's'); a.code != "" || len(a.rows) != 1 {
		t.Fatalf("first row: %+v", a)
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	send(t, bob, &pgproto3.Execute{Portal: "y"}, &pgproto3.Sync{})
	wantRefused(t, "Execute of y after the revocation", readUntil(t, bob.PgConn().Frontend(), 'Z'), codeInsufficientPriv)
}

// TestPortalAfterItsStatementReprepared: a Bind re-prepares a statement
// under a new identity, but a portal bound earlier keeps the old rewrite:
// reading it on must be refused, not checked against the new one.
func TestPortalAfterItsStatementReprepared(t *testing.T) {
	w := startBank(t)
	app := w.assume(t, "alice", nil, nil)
	roundTrip(t, app, &pgproto3.Query{String: "BEGIN"})
	a := roundTrip(t, app, &pgproto3.Parse{Name: "s", Query: "SELECT id FROM accounts ORDER BY id"},
		&pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "x"}, &pgproto3.Execute{Portal: "x", MaxRows: 1})
	if a.code != "" || len(a.rows) != 1 {
		t.Fatalf("first row: %+v", a)
	}
	roundTrip(t, app, &pgproto3.Query{String: "SET mandate.token = '" + w.token(t, "carol", nil, nil) + "'"})
	roundTrip(t, app, &pgproto3.Query{String: "SAVEPOINT a"})
	if a := roundTrip(t, app, &pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "z"}, &pgproto3.Execute{Portal: "z"}); a.code != "" {
		t.Fatalf("carol's portal: %+v", a)
	}
	wantRefused(t, "Execute of alice's portal as carol", roundTrip(t, app, &pgproto3.Execute{Portal: "x"}), codeInsufficientPriv)
	roundTrip(t, app, &pgproto3.Query{String: "ROLLBACK TO SAVEPOINT a"})
	wantRefused(t, "FETCH from alice's portal as carol", roundTrip(t, app, &pgproto3.Query{String: "FETCH ALL FROM x"}), codeInsufficientPriv)
}

// TestNameInUseRefusedBeforeUpstream: a PREPARE of a name that holds a
// statement is refused by mandate, as PostgreSQL would refuse it, without
// going upstream, so what the name holds never rests on reading a failure
// from the answers. The refusal is mandate's: a deny record. (A DECLARE
// goes upstream: see refuseTaken.)
func TestNameInUseRefusedBeforeUpstream(t *testing.T) {
	w := startBank(t)
	alice := w.connect(t, "alice")
	mustSimple(t, alice, "PREPARE p AS SELECT id FROM accounts")
	mustSimple(t, alice, "DECLARE c CURSOR WITH HOLD FOR SELECT id FROM accounts")
	for sql, code := range map[string]string{
		"PREPARE p AS SELECT 1":                   "42P05",
		"DECLARE c CURSOR WITH HOLD FOR SELECT 1": "42P03", // PostgreSQL's refusal
	} {
		if _, err := simple(t, alice, sql); sqlState(err) != code {
			t.Fatalf("%s: want %s, got %v", sql, code, err)
		}
	}
	// Over the extended protocol, at Execute.
	if a := roundTrip(t, alice, &pgproto3.Parse{Query: "PREPARE p AS SELECT 2"}, &pgproto3.Bind{}, &pgproto3.Execute{}); a.code != "42P05" {
		t.Fatalf("PREPARE of a name in use, over the extended protocol: %+v", a)
	}
	// A name dropped in the same query is free again.
	mustSimple(t, alice, "DEALLOCATE p; PREPARE p AS SELECT 3")
	if got := mustSimple(t, alice, "EXECUTE p"); len(got) != 1 || got[0] != "3" {
		t.Fatalf("EXECUTE after DEALLOCATE and PREPARE: %q", got)
	}
	alice.Close(ctxT(t))
	waitFor(t, "two deny records", func() bool {
		data, _ := os.ReadFile(w.audit)
		n := 0
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, `"decision":"deny"`) && strings.Contains(line, `"sqlstate":"42P05"`) {
				n++
			}
		}
		return n == 2
	})
}

// TestLongProtocolNamesEndTheSession (red team round 8, H1): PostgreSQL
// keeps the first 63 bytes of a statement or portal name, so two names
// mandate tells apart would be one object upstream.
func TestLongProtocolNamesEndTheSession(t *testing.T) {
	w := startBank(t)
	long := strings.Repeat("a", 64)
	for _, msg := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Name: long, Query: "SELECT 1"},
		&pgproto3.Bind{PreparedStatement: long},
		&pgproto3.Bind{DestinationPortal: long},
		&pgproto3.Describe{ObjectType: 'P', Name: long},
		&pgproto3.Execute{Portal: long},
		&pgproto3.Close{ObjectType: 'S', Name: long},
	} {
		fatal := fatalAnswer(t, w.connect(t, "alice"), msg, &pgproto3.Sync{})
		if fatal == nil || fatal.Code != "42622" {
			t.Errorf("%T with a 64-byte name: want a FATAL 42622, got %+v", msg, fatal)
		}
	}
	// 63 bytes are fine.
	conn := w.connect(t, "alice")
	if a := roundTrip(t, conn, &pgproto3.Parse{Name: long[:63], Query: "SELECT 1"}, &pgproto3.Bind{PreparedStatement: long[:63]}, &pgproto3.Execute{}); a.code != "" {
		t.Fatalf("a 63-byte name: %+v", a)
	}
}
