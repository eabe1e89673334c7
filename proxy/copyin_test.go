package proxy

import (
	"fmt"
	"testing"
	"time"

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
	} {
		name := fmt.Sprintf("p%d", i)
		mustSimple(t, app, "SET mandate.token = '"+alice+"'")
		mustSimple(t, app, "PREPARE "+name+" AS SELECT id, iban FROM accounts")
		mustSimple(t, app, "SET mandate.token = '"+carol+"'")
		for j, msgs := range copies {
			a := send(msgs...)
			want := []answer{{types: "GC"}, {types: "12GC"}, {types: "12E", code: "0A000"}}[i+j]
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
