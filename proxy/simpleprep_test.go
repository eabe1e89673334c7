package proxy

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSimpleQueriesAsPreparedAnswerAsText: a simple query mandate sends
// as a prepared statement's execution (simpleprep.go) answers exactly as
// the same query sent as text (a replica without the statement cache):
// the same messages, rows and SQLSTATEs, for every persona, through the
// first executions (text), the preparing one, the custom plans and the
// generic plan PostgreSQL switches to after five; in and out of
// transaction blocks, with errors among them.
func TestSimpleQueriesAsPreparedAnswerAsText(t *testing.T) {
	w := startBank(t)
	text, _ := w.replica(t, replicaOptions{edit: func(c *Config) { c.UpstreamStatementCache = 0 }})
	queries := []string{
		"SELECT id, amount, category FROM transactions WHERE id > %d ORDER BY id",
		"SELECT id, iban, balance, balance * 2 FROM accounts WHERE id >= 100 + %d",
		"SELECT name, ssn, phone FROM customers WHERE id = %d",
		"SELECT count(*), sum(amount), max(amount) / 2.5 FROM transactions WHERE amount > -1000000 + %d",
		"SELECT id FROM transactions WHERE id IN (1, 3, %d) AND amount < 99999.99",
		"SELECT id, 1 / (%d - 3) FROM accounts WHERE id < 1000", // division by zero at 3
		"SELECT id FROM transactions WHERE id = %d::int",        // a string literal stays in the text
		"SELECT subject, status FROM support_tickets WHERE id > %d LIMIT 2",
		"SELECT t.id FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE t.id > %d AND a.balance > 0 ORDER BY 1",
	}
	users := []string{"alice", "sam", "dana", "carol"}
	for _, user := range users {
		prep, plain := w.connect(t, user), w.connectTo(t, text, user)
		for _, block := range []bool{false, true} {
			for _, q := range queries {
				if block {
					roundTrip(t, prep, &pgproto3.Query{String: "BEGIN"})
					roundTrip(t, plain, &pgproto3.Query{String: "BEGIN"})
				}
				for i := range 8 {
					sql := fmt.Sprintf(q, i)
					got, want := roundTrip(t, prep, &pgproto3.Query{String: sql}), roundTrip(t, plain, &pgproto3.Query{String: sql})
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("%s, block %v: %s\nprepared: %+v\ntext:     %+v", user, block, sql, got, want)
					}
				}
				if block {
					roundTrip(t, prep, &pgproto3.Query{String: "ROLLBACK"})
					roundTrip(t, plain, &pgproto3.Query{String: "ROLLBACK"})
				}
			}
		}
	}
	if hits, prepared := cacheCount(w.p); prepared == 0 || hits < 100 {
		t.Fatalf("statements prepared %v, executions served by them %v: the translation did not run", prepared, hits)
	}
	if hits, prepared := cacheCount(text); hits != 0 || prepared != 0 {
		t.Fatalf("the replica without a cache prepared %v and served %v", prepared, hits)
	}
}

// TestSimpleQueryAsPreparedLeavesNoUnnamed: a simple query drops the
// unnamed statement and leaves no unnamed portal, prepared or not.
func TestSimpleQueryAsPreparedLeavesNoUnnamed(t *testing.T) {
	w := startBank(t)
	alice := w.connect(t, "alice")
	q := func(i int) *pgproto3.Query {
		return &pgproto3.Query{String: fmt.Sprintf("SELECT id FROM transactions WHERE id > %d", i)}
	}
	for i := range 3 { // prepared from the second
		roundTrip(t, alice, q(i))
	}
	_, prepared0 := cacheCount(w.p)
	hits0, _ := cacheCount(w.p)
	roundTrip(t, alice, &pgproto3.Parse{Query: "SELECT 1"})
	roundTrip(t, alice, q(4))
	if got := roundTrip(t, alice, &pgproto3.Bind{}, &pgproto3.Execute{}); got.code != "26000" {
		t.Fatalf("Bind of the unnamed statement after a simple query: want 26000, got %+v", got)
	}
	roundTrip(t, alice, &pgproto3.Query{String: "BEGIN"})
	roundTrip(t, alice, q(5))
	if got := roundTrip(t, alice, &pgproto3.Execute{}); got.code != "34000" {
		t.Fatalf("Execute of the unnamed portal after a simple query in a block: want 34000, got %+v", got)
	}
	roundTrip(t, alice, &pgproto3.Query{String: "ROLLBACK"})
	if hits, prepared := cacheCount(w.p); hits-hits0 != 2 || prepared != prepared0 {
		t.Fatalf("the simple queries were not served by the prepared statement: %v hits, %v prepared", hits-hits0, prepared-prepared0)
	}
}

// TestSimpleQueryAsPreparedAfterRevocation: the prepared statement is the
// rewrite of the grants it was made under; after a revocation the simple
// query is refused before anything is sent.
func TestSimpleQueryAsPreparedAfterRevocation(t *testing.T) {
	w, id, bob := delegatedBob(t)
	for i := range 4 {
		if got := roundTrip(t, bob, &pgproto3.Query{String: fmt.Sprintf("SELECT id, amount FROM transactions WHERE id > %d", i)}); got.code != "" || len(got.rows) == 0 {
			t.Fatalf("bob before revocation: %+v", got)
		}
	}
	if hits, _ := cacheCount(w.p); hits == 0 {
		t.Fatal("no simple query was served by a prepared statement")
	}
	if _, err := w.store.RevokeDelegation(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, bob, &pgproto3.Query{String: "SELECT id, amount FROM transactions WHERE id > 9"}); got.code != codeInsufficientPriv || len(got.rows) != 0 {
		t.Fatalf("after revocation: want 42501, got %+v", got)
	}
}
