package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The session's identity (SET [LOCAL] mandate.token) and purpose (SET
// [LOCAL] mandate.purpose) follow PostgreSQL's rules for settings, as
// search_path does: these tests run each rule through the proxy against
// the upstream. The pooled application app acts as carol for the session
// and names alice for a part of it; a write shows whose row it reached
// (customers 1 is alice's, 2 is carol's).

const (
	writeOwnRow = "UPDATE customers SET email = email RETURNING id"
	aliceRow    = "1"
	carolRow    = "2"
)

// appAsCarol connects as the pooled application acting as carol for the
// session, and returns alice's token for the test to switch to.
func appAsCarol(t *testing.T, w *bankWorld) (*pgx.Conn, string) {
	t.Helper()
	return w.assume(t, "carol", nil, nil), w.token(t, "alice", nil, nil)
}

// simple runs sql as one simple Query and returns the rows of its
// statements, run together.
func simple(t *testing.T, conn *pgx.Conn, sql string) ([]string, error) {
	t.Helper()
	results, err := conn.PgConn().Exec(ctxT(t), sql).ReadAll()
	var out []string
	for _, r := range results {
		for _, row := range r.Rows {
			out = append(out, textRow(row))
		}
	}
	return out, err
}

func mustSimple(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	out, err := simple(t, conn, sql)
	if err != nil {
		t.Fatalf("%s: %v", clip(sql), err)
	}
	return out
}

// wantRows fails unless sql (one simple Query) returns exactly want.
func wantRows(t *testing.T, conn *pgx.Conn, what, sql string, want ...string) {
	t.Helper()
	got, err := simple(t, conn, sql)
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: %s returned %q, %v; want %q", what, clip(sql), got, err, want)
	}
}

// pipelined sends msgs on conn's socket at once and reads n answers, each
// up to its ReadyForQuery.
func pipelined(t *testing.T, conn *pgx.Conn, n int, msgs ...pgproto3.FrontendMessage) []answer {
	t.Helper()
	send(t, conn, msgs...)
	fe := conn.PgConn().Frontend()
	out := make([]answer, n)
	for i := range out {
		out[i] = readAnswer(t, fe)
	}
	return out
}

// execute is one execution of sql as an unnamed statement, in the batch.
func execute(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}}
}

func batch(parts ...[]pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
	var out []pgproto3.FrontendMessage
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestSetLocalTokenEndsWithItsTransaction: SET LOCAL mandate.token holds
// until its transaction ends and not a statement longer, however the end
// arrives; SET mandate.token in a transaction is undone by ROLLBACK.
func TestSetLocalTokenEndsWithItsTransaction(t *testing.T) {
	w := startBank(t)
	setLocal := func(tok string) string { return "SET LOCAL mandate.token = '" + tok + "'" }

	t.Run("commit and a write in one query", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, setLocal(alice))
		wantRows(t, app, "inside the transaction", writeOwnRow, aliceRow)
		wantRows(t, app, "after COMMIT in the same query", "COMMIT; "+writeOwnRow, carolRow)
	})
	t.Run("pipelined queries", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		got := pipelined(t, app, 4, &pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: setLocal(alice)},
			&pgproto3.Query{String: "COMMIT"}, &pgproto3.Query{String: writeOwnRow})
		if a := got[3]; a.code != "" || strings.Join(a.rows, ",") != carolRow {
			t.Errorf("a write pipelined after COMMIT: rows %q, error %q; want carol's row %s", a.rows, a.code, carolRow)
		}
	})
	t.Run("set local outside a transaction", func(t *testing.T) {
		// PostgreSQL warns and ignores it: the next statement runs as before.
		app, alice := appAsCarol(t, w)
		got := pipelined(t, app, 3, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Query{String: setLocal(alice)},
			&pgproto3.Query{String: writeOwnRow})
		if a := got[2]; a.code != "" || strings.Join(a.rows, ",") != carolRow {
			t.Errorf("a write after SET LOCAL outside a transaction: rows %q, error %q; want carol's row %s", a.rows, a.code, carolRow)
		}
		wantRows(t, app, "not pipelined", writeOwnRow, carolRow)
		mustSimple(t, app, setLocal(alice))
		wantRows(t, app, "after SET LOCAL alone", writeOwnRow, carolRow)
	})
	t.Run("commit and chain in one query", func(t *testing.T) {
		// The statements of one Query form a transaction: a SET LOCAL in it
		// holds for those that follow, then ends. A mandate.* setting is a
		// statement of its own, so here the transaction is a block.
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, setLocal(alice))
		wantRows(t, app, "before COMMIT AND CHAIN", writeOwnRow+"; COMMIT AND CHAIN; "+writeOwnRow+"; COMMIT", aliceRow, carolRow)
		wantRows(t, app, "after the chain", writeOwnRow, carolRow)
	})
	t.Run("rollback to savepoint", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, "SAVEPOINT s")
		mustSimple(t, app, setLocal(alice))
		wantRows(t, app, "after SET LOCAL", writeOwnRow, aliceRow)
		mustSimple(t, app, "ROLLBACK TO SAVEPOINT s")
		wantRows(t, app, "after ROLLBACK TO SAVEPOINT", writeOwnRow, carolRow)
		mustSimple(t, app, "ROLLBACK")
	})
	t.Run("rollback to savepoint and a write in one query", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN; SAVEPOINT s")
		mustSimple(t, app, setLocal(alice))
		wantRows(t, app, "after ROLLBACK TO in the same query", "ROLLBACK TO s; "+writeOwnRow+"; ROLLBACK", carolRow)
	})
	t.Run("session set undone by rollback", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, "SET mandate.token = '"+alice+"'")
		wantRows(t, app, "inside the transaction", writeOwnRow, aliceRow)
		mustSimple(t, app, "ROLLBACK")
		wantRows(t, app, "after ROLLBACK", writeOwnRow, carolRow)
	})
	t.Run("session set kept by commit", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, "SET mandate.token = '"+alice+"'")
		mustSimple(t, app, "COMMIT")
		wantRows(t, app, "after COMMIT", writeOwnRow, aliceRow)
	})
	t.Run("set in a failed transaction", func(t *testing.T) {
		// COMMIT of a failed transaction rolls back; the SET that failed
		// in it (25P02) never ran.
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, "SET mandate.token = '"+alice+"'")
		if _, err := simple(t, app, "SELECT 1/0"); sqlState(err) != "22012" {
			t.Fatalf("SELECT 1/0: %v", err)
		}
		if _, err := simple(t, app, "RESET mandate.token"); sqlState(err) != "25P02" {
			t.Fatalf("RESET in a failed transaction: want 25P02, got %v", err)
		}
		mustSimple(t, app, "COMMIT")
		wantRows(t, app, "after COMMIT of the failed transaction", writeOwnRow, carolRow)
	})
	t.Run("reset all in a query", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		mustSimple(t, app, "BEGIN")
		mustSimple(t, app, "SET mandate.token = '"+alice+"'")
		if _, err := simple(t, app, "RESET ALL; "+writeOwnRow); sqlState(err) != codeInsufficientPriv {
			t.Errorf("a write after RESET ALL in the same query: want 42501 as app, got %v", err)
		}
		mustSimple(t, app, "ROLLBACK")
		wantRows(t, app, "after ROLLBACK", writeOwnRow, carolRow)
	})
}

// TestSetPurposeFollowsTransactions: mandate.purpose has the same
// lifetime rules as the token; dana reads transactions for analytics only.
func TestSetPurposeFollowsTransactions(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	if err := w.store.SetConsent(ctx, "alice", "analytics", true); err != nil {
		t.Fatal(err)
	}
	waitState(t, w)
	const read = "SELECT count(*) FROM transactions"
	denied := func(t *testing.T, conn *pgx.Conn, what string) {
		t.Helper()
		if got, err := simple(t, conn, read); sqlState(err) != codeInsufficientPriv {
			t.Errorf("%s: want 42501 without a purpose, got %q, %v", what, got, err)
		}
	}
	allowed := func(t *testing.T, conn *pgx.Conn, what string) {
		t.Helper()
		if got, err := simple(t, conn, read); err != nil || len(got) != 1 || got[0] == "0" {
			t.Errorf("%s: want alice's transactions for analytics, got %q, %v", what, got, err)
		}
	}

	t.Run("set local ends with commit", func(t *testing.T) {
		dana := w.connect(t, "dana")
		denied(t, dana, "before")
		mustSimple(t, dana, "BEGIN")
		mustSimple(t, dana, "SET LOCAL mandate.purpose = 'analytics'")
		allowed(t, dana, "inside the transaction")
		mustSimple(t, dana, "COMMIT")
		denied(t, dana, "after COMMIT")
	})
	t.Run("set undone by rollback", func(t *testing.T) {
		dana := w.connect(t, "dana")
		mustSimple(t, dana, "BEGIN")
		mustSimple(t, dana, "SET mandate.purpose = 'analytics'")
		allowed(t, dana, "inside the transaction")
		mustSimple(t, dana, "ROLLBACK")
		denied(t, dana, "after ROLLBACK")
	})
	t.Run("set kept by commit", func(t *testing.T) {
		dana := w.connect(t, "dana")
		mustSimple(t, dana, "BEGIN")
		mustSimple(t, dana, "SET mandate.purpose = 'analytics'")
		mustSimple(t, dana, "COMMIT")
		allowed(t, dana, "after COMMIT")
		mustSimple(t, dana, "RESET mandate.purpose")
		denied(t, dana, "after RESET")
	})
	t.Run("show answers the purpose in effect", func(t *testing.T) {
		dana := w.connect(t, "dana")
		mustSimple(t, dana, `SET mandate.purpose = 'it''s \ analytics'`)
		wantRows(t, dana, "after SET", "SHOW mandate.purpose", `it's \ analytics`)
		mustSimple(t, dana, "BEGIN")
		mustSimple(t, dana, "SET LOCAL mandate.purpose = 'analytics'")
		wantRows(t, dana, "after SET LOCAL", "SHOW mandate.purpose", "analytics")
		allowed(t, dana, "after SET LOCAL")
		mustSimple(t, dana, "ROLLBACK")
		wantRows(t, dana, "after ROLLBACK", "SHOW mandate.purpose", `it's \ analytics`)
		// Over the extended protocol, the SET applies when executed.
		if _, err := dana.Exec(ctx, "SET mandate.purpose = 'analytics'"); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := dana.QueryRow(ctx, "SHOW mandate.purpose").Scan(&got); err != nil || got != "analytics" {
			t.Errorf("SHOW over the extended protocol: %q, %v; want analytics", got, err)
		}
		allowed(t, dana, "after an extended SET")
		mustSimple(t, dana, "RESET mandate.purpose")
		wantRows(t, dana, "after RESET", "SHOW mandate.purpose", "")
		denied(t, dana, "after RESET")
	})
}

// TestMandateSettingsOverExtendedProtocol: a mandate.* setting takes
// effect when its statement is executed, as in PostgreSQL, not when it is
// parsed; over the extended protocol it works as in a simple Query.
func TestMandateSettingsOverExtendedProtocol(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	if err := w.store.SetConsent(ctx, "alice", "analytics", true); err != nil {
		t.Fatal(err)
	}
	waitState(t, w)

	t.Run("parsed, never executed", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		for _, sql := range []string{"SET mandate.token = '" + alice + "'", "RESET mandate.token", "DISCARD ALL", "RESET ALL"} {
			if a := roundTrip(t, app, &pgproto3.Parse{Name: "p", Query: sql}, &pgproto3.Close{ObjectType: 'S', Name: "p"}); a.code != "" {
				t.Fatalf("Parse of %s: error %s", clip(sql), a.code)
			}
			wantRows(t, app, "after a Parse of "+clip(sql), writeOwnRow, carolRow)
		}
		dana := w.connect(t, "dana")
		if a := roundTrip(t, dana, &pgproto3.Parse{Name: "x", Query: "SET mandate.purpose = 'analytics'"}); a.code != "" {
			t.Fatalf("Parse of SET mandate.purpose: error %s", a.code)
		}
		if got, err := simple(t, dana, "SELECT count(*) FROM transactions"); sqlState(err) != codeInsufficientPriv {
			t.Errorf("after a Parse of SET mandate.purpose: want 42501, got %q, %v", got, err)
		}
		// Executed, it takes effect.
		if a := roundTrip(t, dana, &pgproto3.Bind{PreparedStatement: "x"}, &pgproto3.Execute{}); a.code != "" || a.types != "2C" {
			t.Fatalf("Bind and Execute of SET mandate.purpose: %+v", a)
		}
		if got, err := simple(t, dana, "SELECT count(*) FROM transactions"); err != nil || len(got) != 1 || got[0] == "0" {
			t.Errorf("after executing SET mandate.purpose: got %q, %v", got, err)
		}
	})
	t.Run("parse, bind, execute", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		if a := roundTrip(t, app, execute("SET mandate.token = '"+alice+"'")...); a.code != "" || a.types != "12C" {
			t.Fatalf("SET mandate.token over the extended protocol: %+v", a)
		}
		wantRows(t, app, "after it", writeOwnRow, aliceRow)
		if a := roundTrip(t, app, execute("RESET mandate.token")...); a.code != "" {
			t.Fatalf("RESET mandate.token over the extended protocol: %+v", a)
		}
		if _, err := simple(t, app, writeOwnRow); sqlState(err) != codeInsufficientPriv {
			t.Errorf("after RESET: want 42501 as app, got %v", err)
		}
	})
	t.Run("one batch", func(t *testing.T) {
		// The statements up to a Sync: each is decided under the identity
		// the ones before it leave.
		app, alice := appAsCarol(t, w)
		a := roundTrip(t, app, batch(execute("BEGIN"), execute("SET LOCAL mandate.token = '"+alice+"'"), execute(writeOwnRow),
			execute("COMMIT"), execute(writeOwnRow))...)
		if a.code != "" || strings.Join(a.rows, ",") != aliceRow+","+carolRow {
			t.Errorf("SET LOCAL, a write, COMMIT, a write: rows %q, error %q; want alice's then carol's", a.rows, a.code)
		}
		// Outside a block the batch is the transaction: SET LOCAL holds to its Sync.
		a = roundTrip(t, app, batch(execute("SET LOCAL mandate.token = '"+alice+"'"), execute(writeOwnRow))...)
		if a.code != "" || strings.Join(a.rows, ",") != aliceRow {
			t.Errorf("SET LOCAL and a write in a batch: rows %q, error %q; want alice's", a.rows, a.code)
		}
		wantRows(t, app, "after that batch", writeOwnRow, carolRow)
		// An error skips the rest of the batch, the setting with it.
		a = roundTrip(t, app, batch(execute("SELECT 1/0"), execute("SET mandate.token = '"+alice+"'"))...)
		if a.code != "22012" {
			t.Fatalf("SELECT 1/0 and a SET: %+v", a)
		}
		wantRows(t, app, "after the failed batch", writeOwnRow, carolRow)
	})
	t.Run("named, executed twice", func(t *testing.T) {
		app, alice := appAsCarol(t, w)
		if a := roundTrip(t, app, &pgproto3.Parse{Name: "to_alice", Query: "SET mandate.token = '" + alice + "'"}); a.code != "" {
			t.Fatalf("Parse: %+v", a)
		}
		for range 2 {
			if a := roundTrip(t, app, &pgproto3.Bind{PreparedStatement: "to_alice"}, &pgproto3.Execute{}); a.code != "" {
				t.Fatalf("Bind and Execute: %+v", a)
			}
			wantRows(t, app, "after it", writeOwnRow, aliceRow)
			mustSimple(t, app, "SET mandate.token = '"+w.token(t, "carol", nil, nil)+"'")
			wantRows(t, app, "back to carol", writeOwnRow, carolRow)
		}
	})
	t.Run("a portal runs the statement it was bound to", func(t *testing.T) {
		// A Parse replaces the unnamed statement, not the portal made of it.
		app, alice := appAsCarol(t, w)
		a := roundTrip(t, app, &pgproto3.Parse{Query: "SET mandate.token = '" + alice + "'"}, &pgproto3.Bind{},
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Execute{})
		if a.code != "" || a.types != "121C" {
			t.Fatalf("Execute of a SET's portal after a Parse: %+v", a)
		}
		wantRows(t, app, "after the SET ran", writeOwnRow, aliceRow)
		mustSimple(t, app, "SET mandate.token = '"+w.token(t, "carol", nil, nil)+"'")
		a = roundTrip(t, app, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{},
			&pgproto3.Parse{Query: "SET mandate.token = '" + alice + "'"}, &pgproto3.Execute{})
		if a.code != "" || strings.Join(a.rows, ",") != "1" {
			t.Fatalf("Execute of a SELECT's portal after a Parse of a SET: %+v", a)
		}
		wantRows(t, app, "after the SELECT ran", writeOwnRow, carolRow)
	})
	t.Run("a portal bound before a SET in its batch", func(t *testing.T) {
		// Bound as carol, executed after the batch set alice: the Bind's
		// decision no longer covers it, and the rewrite made for carol is
		// not alice's.
		app, alice := appAsCarol(t, w)
		a := roundTrip(t, app, batch([]pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "w", Query: writeOwnRow}, &pgproto3.Bind{PreparedStatement: "w", DestinationPortal: "pw"}},
			execute("SET mandate.token = '"+alice+"'"), []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: "pw"}})...)
		if a.code != codeInsufficientPriv || len(a.rows) > 0 {
			t.Fatalf("carol's portal executed as alice: want 42501 and no rows, got %+v", a)
		}
		// The failed batch rolled the SET back.
		wantRows(t, app, "after the refusal", writeOwnRow, carolRow)
	})
	t.Run("a bad token", func(t *testing.T) {
		app, _ := appAsCarol(t, w)
		a := roundTrip(t, app, batch(execute("SET mandate.token = 'not-a-token'"), execute(writeOwnRow))...)
		if a.code != "28000" && a.code != "28P01" || len(a.rows) > 0 {
			t.Fatalf("a bad token over the extended protocol: want 28000 and nothing run after it, got %+v", a)
		}
		wantRows(t, app, "after the refusal", writeOwnRow, carolRow)
		alice := w.connect(t, "alice")
		a = roundTrip(t, alice, execute("SET mandate.token = '"+w.token(t, "carol", nil, nil)+"'")...)
		if a.code != codeInsufficientPriv {
			t.Fatalf("alice assumes carol over the extended protocol: want 42501, got %+v", a)
		}
		wantRows(t, alice, "after the refusal", writeOwnRow, aliceRow)
	})
}

// TestAuditCarriesTheIdentityInEffect: the audit record of a statement
// names the identity and purpose it ran under: not a SET LOCAL's whose
// transaction has ended, and not the Parse's for a prepared statement run
// later under another.
func TestAuditCarriesTheIdentityInEffect(t *testing.T) {
	w := startBank(t)
	app, alice := appAsCarol(t, w)
	if a := roundTrip(t, app, &pgproto3.Parse{Name: "q", Query: "SELECT 1"}); a.code != "" {
		t.Fatalf("Parse: %+v", a)
	}
	mustSimple(t, app, "BEGIN")
	mustSimple(t, app, "SET LOCAL mandate.token = '"+alice+"'")
	mustSimple(t, app, "SET LOCAL mandate.purpose = 'support'")
	mustSimple(t, app, "COMMIT; UPDATE customers SET email = email WHERE false")
	mustSimple(t, app, "SET mandate.token = '"+alice+"'")
	mustSimple(t, app, "SET mandate.purpose = 'support'")
	if a := roundTrip(t, app, &pgproto3.Bind{PreparedStatement: "q"}, &pgproto3.Execute{}); a.code != "" {
		t.Fatalf("Bind and Execute: %+v", a)
	}
	app.Close(context.Background())
	var records, sets []map[string]any
	waitFor(t, "the audit records", func() bool {
		f, err := os.Open(w.audit)
		if err != nil {
			return false
		}
		defer f.Close()
		records, sets = records[:0], sets[:0]
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r map[string]any
			switch {
			case json.Unmarshal(sc.Bytes(), &r) != nil || r["decision"] == nil || r["action"] == "login":
			case r["action"] == "set":
				sets = append(sets, r)
			default:
				records = append(records, r)
			}
		}
		return len(records) == 4 && len(sets) == 5
	})
	// BEGIN as carol, COMMIT as alice for support (SET LOCAL still held),
	// the write after it, the prepared statement.
	if r := records[2]; r["action"] != "update" || r["subject"] != "carol" || r["purpose"] != nil {
		t.Errorf("audit record of a write after COMMIT: %v %v for %v; want carol, no purpose", r["action"], r["subject"], r["purpose"])
	}
	if r := records[3]; r["subject"] != "alice" || r["purpose"] != "support" {
		t.Errorf("audit record of a statement parsed as carol, run as alice for support: subject %v, purpose %v", r["subject"], r["purpose"])
	}
	// Each identity or purpose switch is on record, naming who acts after it.
	for i, want := range []string{"carol <nil>", "alice <nil>", "alice support", "alice <nil>", "alice support"} {
		if got := fmt.Sprint(sets[i]["subject"], " ", sets[i]["purpose"]); got != want {
			t.Errorf("record of setting %d: subject and purpose %q, want %q", i+1, got, want)
		}
	}
}

// TestExpiredTokenCanRollBack: an identity whose token expires inside a
// transaction has its statements refused (28000), which aborts the
// transaction; ROLLBACK still runs, so a pooled connection recovers and
// names the next user.
func TestExpiredTokenCanRollBack(t *testing.T) {
	w := startBank(t)
	app, alice := appAsCarol(t, w)
	mustSimple(t, app, "BEGIN")
	mustSimple(t, app, "SET LOCAL mandate.token = '"+alice+"'")
	mustSimple(t, app, "SELECT id FROM accounts")
	w.clock.advance(2 * time.Hour) // past every token's expiry
	waitState(t, w)
	if got, err := simple(t, app, "SELECT id FROM accounts"); sqlState(err) != codeInvalidAuthSpec {
		t.Fatalf("after expiry: got %q, %v; want 28000", got, err)
	}
	for _, sql := range []string{"ROLLBACK", "BEGIN", "ROLLBACK"} {
		if _, err := simple(t, app, sql); err != nil {
			t.Fatalf("%s with an expired token: %v", sql, err)
		}
	}
	mustSimple(t, app, "SET mandate.token = '"+w.token(t, "alice", nil, nil)+"'")
	wantRows(t, app, "a fresh token after ROLLBACK", "SELECT count(*) FROM accounts", "2")
}

// TestMandateSettingTags: a handled mandate.* setting answers with the
// command tag PostgreSQL gives the statement the client wrote.
func TestMandateSettingTags(t *testing.T) {
	w := startBank(t)
	ctx := ctxT(t)
	app, _ := appAsCarol(t, w)
	for sql, want := range map[string]string{
		"RESET mandate.token":            "RESET",
		"RESET mandate.purpose":          "RESET",
		"SET mandate.purpose TO DEFAULT": "SET",
		"SET mandate.token TO DEFAULT":   "SET",
		"RESET work_mem":                 "RESET", // PostgreSQL's own, for comparison
	} {
		res, err := app.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if got := res[0].CommandTag.String(); got != want {
			t.Errorf("%s: tag %q, want %q", sql, got, want)
		}
	}
}

// TestStartupSettingsReadAsPostgres: the options parameter splits as
// pg_split_opts does and a search_path as SplitIdentifierString does (red
// team round 33, F1); the adversarial cases check the same on PostgreSQL.
func TestStartupSettingsReadAsPostgres(t *testing.T) {
	long := strings.Repeat("s", 70)
	for in, want := range map[string][]string{
		`a, B ,"C""d"`:    {"a", "b", `C"d`},
		`"$user", public`: {"$user", "public"},
		"  ":              nil,
		`Ünï,x`:           {"Ünï", "x"}, // only ASCII folds
		long:              {long[:63]},
		`"` + long + `"`:  {long[:63]},
		`"a,b" , c`:       {"a,b", "c"},
	} {
		got, ok := splitIdentifiers(in)
		if !ok || !slices.Equal(got, want) {
			t.Errorf("splitIdentifiers(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if got, ok := splitIdentifiers(" "); !ok || got == nil {
		t.Errorf("splitIdentifiers(blank) = %#v, %v; want an empty path, not the default (nil)", got, ok)
	}
	for _, in := range []string{`a,,b`, `"a`, `a b`, `a,`, `,a`} {
		if got, ok := splitIdentifiers(in); ok {
			t.Errorf("splitIdentifiers(%q) = %q; want a syntax error", in, got)
		}
	}
	for in, want := range map[string][][2]string{
		`-c search_path=a -csearch-path=b --Work-Mem=1MB`: {{"search_path", "a"}, {"search_path", "b"}, {"work_mem", "1MB"}},
		`-c application_name=x\ -c\ role=y`:               {{"application_name", "x -c role=y"}},
		`-c a=b\\ -c c=d`:                                 {{"a", `b\`}, {"c", "d"}},
	} {
		got, err := optionSettings(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("optionSettings(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`-c`, `-e`, `-ec a=b`, `--`, `x`} {
		if got, err := optionSettings(in); err == nil {
			t.Errorf("optionSettings(%q) = %q; want a refusal", in, got)
		}
	}
}

// TestUpstreamStartsWithMandatesPath (red team round 42b, F1): a session
// that sets no search_path runs on a backend started with the default path
// mandate decides by. A database default set after mandate read its own
// (here evil ahead of public, where evil.sqrt(int4) is the exact match
// for sqrt(4)) reached new backends only, and the overload ran
// past the allow-list.
func TestUpstreamStartsWithMandatesPath(t *testing.T) {
	w := startBank(t)
	w.migrate(t, `CREATE SCHEMA evil;
CREATE FUNCTION evil.sqrt(int4) RETURNS text LANGUAGE sql AS 'SELECT ''evil''';`)
	if err := pg.ExecContext(ctxT(t), "ALTER DATABASE "+w.db+" SET search_path = evil, public"); err != nil {
		t.Fatal(err)
	}
	for range 3 { // new sessions, new backends
		alice := w.connect(t, "alice")
		got, err := rows(t, alice, "SELECT sqrt(4)")
		if err != nil || len(got) != 1 || got[0] != "2" {
			t.Fatalf("sqrt(4): %v, %v; want pg_catalog's 2", got, err)
		}
		if got, _ := rows(t, alice, "SHOW search_path"); len(got) != 1 || got[0] != `"$user", public` {
			t.Errorf("search_path %v, want mandate's", got)
		}
	}
}

// TestPipelinedPathInDoubt (red team round 44b): a statement pipelined
// behind unanswered ones is decided as if they succeed, but PostgreSQL
// resolves its unqualified calls by the path actually in effect; here the
// COMMIT of a failed block rolls back SET search_path = public, and
// evil.sqrt(int4), the exact match for sqrt(4), ran. It must pass under
// every path a failure may leave.
func TestPipelinedPathInDoubt(t *testing.T) {
	w := startBank(t)
	w.migrate(t, `CREATE SCHEMA evil;
CREATE FUNCTION evil.sqrt(int4) RETURNS text LANGUAGE sql AS 'SELECT ''evil''';`)
	alice := w.connect(t, "alice")
	if _, err := alice.Exec(ctxT(t), "BEGIN; SET search_path = evil, public; COMMIT"); err != nil {
		t.Fatal(err)
	}
	got := pipeline(t, alice, &pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT 1/0"},
		&pgproto3.Query{String: "SET search_path = public"}, &pgproto3.Query{String: "COMMIT"},
		&pgproto3.Query{String: "SELECT sqrt(4)"})
	if last := got[len(got)-1]; last.code != codeInsufficientPriv {
		t.Fatalf("sqrt(4) behind a failed block: %+v, want 42501", last)
	}
	// Settled, the path is evil's and the call refused; with public set
	// and answered, it runs pg_catalog's.
	if _, err := alice.Exec(ctxT(t), "SET search_path = public"); err != nil {
		t.Fatal(err)
	}
	if got, err := rows(t, alice, "SELECT sqrt(4)"); err != nil || len(got) != 1 || got[0] != "2" {
		t.Fatalf("sqrt(4) on public: %v, %v", got, err)
	}
}

// TestPipelinedPathChangeStillRuns: a client that pipelines SET search_path
// and a query of a relation only the new path finds is answered; in doubt,
// only functions, operators and types are checked under the other paths
// (the rewrite names the relations' schemas).
func TestPipelinedPathChangeStillRuns(t *testing.T) {
	w := startBank(t)
	w.migrate(t, `CREATE SCHEMA empty`)
	alice := w.connect(t, "alice")
	if _, err := alice.Exec(ctxT(t), "SET search_path = empty"); err != nil {
		t.Fatal(err)
	}
	got := pipeline(t, alice, &pgproto3.Query{String: "SET search_path = public"},
		&pgproto3.Query{String: "SELECT id FROM accounts WHERE customer_id = 1"})
	if last := got[len(got)-1]; last.code != "" || len(last.rows) == 0 {
		t.Fatalf("a query behind a pipelined SET search_path: %+v", last)
	}
}
