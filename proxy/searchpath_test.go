package proxy

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mandate-proxy/mandate/rewrite"
)

// TestSearchPathFollowsPostgreSQL drives the tracker as the two relay
// loops do and checks the path the next statement is decided with against
// what PostgreSQL does (rewrite's doc.go, "Session state").
func TestSearchPathFollowsPostgreSQL(t *testing.T) {
	set := func(path ...string) rewrite.Effect {
		return rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Path: path}}
	}
	local := func(path ...string) rewrite.Effect {
		return rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Path: path, Local: true}}
	}
	reset := rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Reset: true}}
	tx := func(c rewrite.TxControl, savepoint string) rewrite.Effect {
		return rewrite.Effect{Tx: c, Savepoint: savepoint}
	}
	begin, commit, rollback := tx(rewrite.TxBegin, ""), tx(rewrite.TxCommit, ""), tx(rewrite.TxRollback, "")
	other := rewrite.Effect{} // SELECT and the like

	// A step is what one loop does: the client loop forwards a Query
	// (effects, "!" for a refusal marker) or extended messages up to a
	// Sync; the upstream loop answers a segment: n successes, then maybe
	// an error, then ReadyForQuery.
	type step struct {
		send     []rewrite.Effect
		refusal  bool // after send
		open     bool // the segment's Query or Sync is not sent yet
		answered int  // -1: not an answer
		failed   bool
		status   byte
	}
	query := func(e ...rewrite.Effect) step { return step{send: e, answered: -1} }
	refusedQuery := func(e ...rewrite.Effect) step { return step{send: e, refusal: true, answered: -1} }
	ok := func(n int, status byte) step { return step{answered: n, status: status} }
	failed := func(n int, status byte) step { return step{answered: n, failed: true, status: status} }

	for _, c := range []struct {
		name    string
		initial []string
		steps   []step
		want    string
	}{
		{"set", nil, []step{query(set("a")), ok(1, 'I')}, "a"},
		{"set in a failed query", nil, []step{query(set("a"), other), failed(1, 'I')}, ""},
		{"set, commit, then an error", nil, []step{query(set("a"), commit, other), failed(2, 'I')}, "a"},
		{"same query sees the set", nil, []step{query(set("a"))}, "a"},
		{"refused query rolls back", nil, []step{refusedQuery(set("a"))}, ""},
		{"pipelined after a failure", nil, []step{query(set("a"), other), query(other), failed(1, 'I')}, ""},
		{"pipelined before the answer", nil, []step{query(set("a"), other), query(other)}, "a"},
		{"set local outside a block", nil, []step{query(local("a")), ok(1, 'I')}, ""},
		{"set local, for the query's next statement", nil, []step{{send: []rewrite.Effect{local("a")}, open: true, answered: -1}}, "a"},
		{"set local until commit", nil, []step{
			query(begin), ok(1, 'T'), query(set("a")), ok(1, 'T'), query(local("b")), ok(1, 'T'), query(commit), ok(1, 'I'),
		}, "a"},
		{"rollback", []string{"s"}, []step{query(begin), ok(1, 'T'), query(set("a")), ok(1, 'T'), query(rollback), ok(1, 'I')}, "s"},
		{"rollback to savepoint", nil, []step{
			query(begin), ok(1, 'T'), query(set("a")), ok(1, 'T'), query(tx(rewrite.TxSavepoint, "s")), ok(1, 'T'),
			query(set("b")), ok(1, 'T'), query(tx(rewrite.TxRollbackTo, "s")), ok(1, 'T'),
		}, "a"},
		{"rollback to the newest savepoint of a name", nil, []step{
			query(begin, tx(rewrite.TxSavepoint, "s"), set("a"), tx(rewrite.TxSavepoint, "s"), set("b"),
				tx(rewrite.TxRollbackTo, "s")),
		}, "a"},
		{"release keeps", nil, []step{
			query(begin, tx(rewrite.TxSavepoint, "s"), set("a"), tx(rewrite.TxRelease, "s"), commit), ok(5, 'I'),
		}, "a"},
		{"release then rollback to an outer savepoint", nil, []step{
			query(begin, set("a"), tx(rewrite.TxSavepoint, "o"), set("b"), tx(rewrite.TxSavepoint, "i"), set("c"),
				tx(rewrite.TxRelease, "i"), tx(rewrite.TxRollbackTo, "o")),
		}, "a"},
		{"commit of a failed block rolls back", nil, []step{
			query(begin), ok(1, 'T'), query(set("a"), other), failed(1, 'E'), query(commit), ok(1, 'I'),
		}, ""},
		{"rollback to after an error", nil, []step{
			query(begin, set("a"), tx(rewrite.TxSavepoint, "s"), set("b"), other), failed(4, 'E'),
			query(tx(rewrite.TxRollbackTo, "s")), ok(1, 'T'), query(commit), ok(1, 'I'),
		}, "a"},
		{"begin converts the implicit transaction", nil, []step{query(set("a"), begin, set("b"), rollback), ok(4, 'I')}, ""},
		{"reset returns to the start value", []string{"s"}, []step{query(set("a")), ok(1, 'I'), query(reset), ok(1, 'I')}, "s"},
		{"a block the statements did not show", nil, []step{
			query(other), ok(1, 'T'), query(set("a")), ok(1, 'T'), query(rollback), ok(1, 'I'),
		}, ""},
		{"commit and chain", nil, []step{
			query(begin, set("a"), rewrite.Effect{Tx: rewrite.TxCommit, Chain: true}, set("b"), rollback), ok(5, 'I'),
		}, "a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p searchPath
			p.start(c.initial)
			for _, s := range c.steps {
				if s.answered < 0 {
					for _, e := range s.send {
						p.sent(e, nil)
					}
					if s.refusal {
						p.refused()
					}
					if !s.open {
						p.segmentSent()
					}
					continue
				}
				for range s.answered {
					p.answer()
				}
				if s.failed {
					p.errored()
				}
				p.ready([]byte{s.status})
			}
			if got := strings.Join(p.current(), ","); got != c.want {
				t.Errorf("path %q, want %q", got, c.want)
			}
		})
	}
}

// TestAnswersTellWhatRan: a message forwarded with a watch learns that it
// ran when its answer comes, and that it did not when an error comes
// before it (the upstream skips the rest of the segment); a later
// segment's messages are not settled by an earlier one's answers.
func TestAnswersTellWhatRan(t *testing.T) {
	var p searchPath
	p.start(nil)
	var first, failing, skipped, later atomic.Int32
	for _, w := range []*atomic.Int32{&first, &failing, nil, &skipped} {
		p.sent(rewrite.Effect{}, w)
	}
	p.segmentSent()
	p.sent(rewrite.Effect{}, &later)
	p.segmentSent()
	state := func() [4]int32 { return [4]int32{first.Load(), failing.Load(), skipped.Load(), later.Load()} }
	p.answer()
	if got := state(); got != [4]int32{stmtReady, stmtPending, stmtPending, stmtPending} {
		t.Fatalf("after the first answer: %v", got)
	}
	p.errored()
	p.ready([]byte{'I'})
	if got := state(); got != [4]int32{stmtReady, stmtFailed, stmtFailed, stmtPending} {
		t.Fatalf("after an error at the second: %v", got)
	}
	p.answer()
	if got := state(); got[3] != stmtReady {
		t.Fatalf("the later segment's answer: %v", got)
	}
}
