package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSyncInsideCopyIsNotASegment (red team round 5, W1): PostgreSQL
// ignores a Sync sent while a COPY FROM STDIN runs. Counted as a segment,
// it put every later answer one segment off: a PREPARE that failed upstream
// ("already exists") passed for one that ran, and EXECUTE ran a statement
// another identity had prepared.
func TestSyncInsideCopyIsNotASegment(t *testing.T) {
	w := startBank(t)
	app, alice := appAsCarol(t, w)
	carol := w.token(t, "carol", nil, nil)
	_ = app.PgConn().Conn().SetDeadline(time.Now().Add(20 * time.Second)) // a lost answer fails, not hangs
	fe := app.PgConn().Frontend()
	send := func(msgs ...pgproto3.FrontendMessage) answer {
		t.Helper()
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		return readAnswer(t, fe)
	}
	const copyIn = "COPY support_tickets (id, customer_id, subject, body, status) FROM STDIN"

	for i, copies := range [][][]pgproto3.FrontendMessage{
		// The simple protocol, with a Sync inside the COPY.
		{{&pgproto3.Query{String: copyIn}, &pgproto3.Sync{}, &pgproto3.CopyDone{}}},
		// The extended protocol, as libpq sends it: the batch's Sync
		// before the rows, another after CopyDone, one ReadyForQuery for
		// both. Then a COPY that fails to start: the batch's Sync is
		// PostgreSQL's to answer.
		{
			{&pgproto3.Parse{Query: copyIn}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
				&pgproto3.CopyData{Data: []byte("900\t2\tsubject\tbody\topen\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{}},
			{&pgproto3.Parse{Query: copyIn + " (DELIMITER 'ab')"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
		},
		// COPYs that an earlier error of their batch skips, whose answers
		// came before the Sync or will come after it (red team round 6,
		// F2: the Sync waited for ever).
		{
			{&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{},
				&pgproto3.Parse{Query: copyIn}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{&pgproto3.Parse{Name: "cp", Query: copyIn}, &pgproto3.Bind{PreparedStatement: "cp"}, &pgproto3.Execute{},
				&pgproto3.CopyFail{Message: "no"}, &pgproto3.Bind{PreparedStatement: "cp"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
		},
	} {
		name := fmt.Sprintf("p%d", i)
		mustSimple(t, app, "SET mandate.token = '"+alice+"'")
		mustSimple(t, app, "PREPARE "+name+" AS SELECT id, iban FROM accounts")
		mustSimple(t, app, "SET mandate.token = '"+carol+"'")
		for j, msgs := range copies {
			a := send(msgs...)
			want := [][]answer{{{types: "GC"}}, {{types: "12GC"}, {types: "12E", code: "0A000"}},
				{{types: "1E", code: "22012"}, {types: "12GE", code: "57014"}}}[i][j]
			if a.code != want.code || a.types != want.types {
				t.Fatalf("copy %d.%d: %+v, want %+v", i, j, a, want)
			}
		}
		// In step, the failed PREPARE is known to have failed, and EXECUTE
		// is checked against the statement alice prepared.
		if _, err := simple(t, app, "PREPARE "+name+" AS SELECT 1"); sqlState(err) != "42P05" {
			t.Fatalf("PREPARE of a name in use: want 42P05, got %v", err)
		}
		mustSimple(t, app, "SELECT 1")
		if got, err := simple(t, app, "EXECUTE "+name); sqlState(err) != codeInsufficientPriv {
			t.Fatalf("EXECUTE of alice's statement, as carol, after copy %d: got %q, %v; want 42501", i, got, err)
		}
	}
	if got := mustSimple(t, app, "SELECT count(*) FROM support_tickets WHERE subject = 'subject'"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("the row the extended-protocol COPY wrote: %q", got)
	}
}

// TestQueryInsideABatchEndsTheSession (red team round 6, F1): a simple
// Query before the Sync of extended-protocol messages runs, unless one of
// them failed; then PostgreSQL skips it unanswered, and mandate, counting
// answers, would take the next answer for its. It ends the session.
func TestQueryInsideABatchEndsTheSession(t *testing.T) {
	w := startBank(t)
	for _, msgs := range [][]pgproto3.FrontendMessage{
		{&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Query{String: "SELECT 2"}},
		{&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.FunctionCall{Function: 1}},
	} {
		fatal := fatalAnswer(t, w.connect(t, "alice"), msgs...)
		if fatal == nil || fatal.Code != "08P01" {
			t.Errorf("%T before the Sync: want a FATAL 08P01, got %+v", msgs[3], fatal)
		}
	}
}

// TestExecuteOfAProtocolCopyIsRefused (red team round 7, G1): SQL EXECUTE
// runs a statement a protocol Parse made, a COPY FROM STDIN included, and
// PostgreSQL then ignores Sync inside a statement mandate took for an
// EXECUTE: it is refused.
func TestExecuteOfAProtocolCopyIsRefused(t *testing.T) {
	w := startBank(t)
	app, _ := appAsCarol(t, w)
	if a := roundTrip(t, app, &pgproto3.Parse{Name: "cp", Query: "COPY support_tickets (id, customer_id, subject, body, status) FROM STDIN"}); a.code != "" {
		t.Fatalf("Parse of a COPY: %+v", a)
	}
	if _, err := simple(t, app, "EXECUTE cp"); sqlState(err) != codeFeatureUnsupported {
		t.Fatalf("EXECUTE of a protocol COPY: want 0A000, got %v", err)
	}
	if a := roundTrip(t, app, &pgproto3.Parse{Query: "EXECUTE cp"}, &pgproto3.Bind{}, &pgproto3.Execute{}); a.code != codeFeatureUnsupported {
		t.Fatalf("EXECUTE of a protocol COPY over the extended protocol: %+v", a)
	}
	mustSimple(t, app, "SELECT 1")
}

// fatalAnswer sends msgs on conn and returns the FATAL error that ends the
// session, or nil when the session ends or stalls without one.
func fatalAnswer(t *testing.T, conn *pgx.Conn, msgs ...pgproto3.FrontendMessage) *pgproto3.ErrorResponse {
	t.Helper()
	_ = conn.PgConn().Conn().SetDeadline(time.Now().Add(10 * time.Second))
	fe := conn.PgConn().Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			return nil
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok && e.Severity == "FATAL" {
			return e
		}
	}
}
