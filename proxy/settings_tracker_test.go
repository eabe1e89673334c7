package proxy

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mandate-proxy/mandate/rewrite"
)

// TestSettingsFollowPostgreSQL drives the tracker as the two relay loops
// do and checks the values the next statement is decided with (search_path,
// identity, purpose) against what PostgreSQL does with settings (rewrite's
// doc.go, "Session state").
func TestSettingsFollowPostgreSQL(t *testing.T) {
	op := func(e rewrite.Effect) settingsOp { return settingsOp{effect: e} }
	set := func(path ...string) settingsOp {
		return op(rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Path: path}})
	}
	local := func(path ...string) settingsOp {
		return op(rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Path: path, Local: true}})
	}
	reset := op(rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Reset: true}})
	resetAll := op(rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Reset: true}, ResetAll: true})
	tx := func(c rewrite.TxControl, savepoint string) settingsOp {
		return op(rewrite.Effect{Tx: c, Savepoint: savepoint})
	}
	begin, commit, rollback := tx(rewrite.TxBegin, ""), tx(rewrite.TxCommit, ""), tx(rewrite.TxRollback, "")
	other := op(rewrite.Effect{}) // SELECT and the like
	// The identity is shown by its subject, the purpose after a slash.
	as := func(sub string) settingsOp {
		return settingsOp{mandate: &mandateChange{identity: &principal{Subject: sub}}}
	}
	asLocal := func(sub string) settingsOp {
		return settingsOp{mandate: &mandateChange{identity: &principal{Subject: sub}, local: true}}
	}
	login := settingsOp{mandate: &mandateChange{}}
	purpose := func(p string, isLocal bool) settingsOp {
		return settingsOp{mandate: &mandateChange{purpose: true, value: p, local: isLocal}}
	}

	// A step is what one loop does: the client loop forwards a Query
	// (ops, "!" for a refusal marker) or extended messages up to a
	// Sync; the upstream loop answers a segment: n successes, then maybe
	// an error, then ReadyForQuery.
	type step struct {
		send     []settingsOp
		refusal  bool // after send
		open     bool // the segment's Query or Sync is not sent yet
		answered int  // -1: not an answer
		failed   bool
		status   byte
	}
	query := func(ops ...settingsOp) step { return step{send: ops, answered: -1} }
	refusedQuery := func(ops ...settingsOp) step { return step{send: ops, refusal: true, answered: -1} }
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
		{"set local, for the query's next statement", nil, []step{{send: []settingsOp{local("a")}, open: true, answered: -1}}, "a"},
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
			query(begin, set("a"), op(rewrite.Effect{Tx: rewrite.TxCommit, Chain: true}), set("b"), rollback), ok(5, 'I'),
		}, "a"},

		// The identity and the purpose, by the same rules.
		{"assume", nil, []step{query(as("alice")), ok(1, 'I')}, " as alice"},
		{"assume, reset", nil, []step{query(as("alice")), ok(1, 'I'), query(login), ok(1, 'I')}, ""},
		{"assume local outside a block", nil, []step{query(asLocal("alice")), ok(1, 'I')}, ""},
		{"assume local outside a block, pipelined", nil, []step{query(other), query(asLocal("alice")), query(other)}, ""},
		{"assume local in a batch, before its Sync", nil, []step{{send: []settingsOp{asLocal("alice")}, open: true, answered: -1}}, " as alice"},
		{"assume local until commit", nil, []step{
			query(as("carol")), ok(1, 'I'), query(begin), ok(1, 'T'), query(asLocal("alice")), ok(1, 'T'),
		}, " as alice"},
		{"assume local ends with commit", nil, []step{
			query(as("carol")), ok(1, 'I'), query(begin), ok(1, 'T'), query(asLocal("alice")), ok(1, 'T'), query(commit), ok(1, 'I'),
		}, " as carol"},
		{"assume local ends with a pipelined commit", nil, []step{
			query(as("carol")), query(begin), query(asLocal("alice")), query(commit),
		}, " as carol"},
		{"assume local ends with commit in the same query", nil, []step{
			query(begin), ok(1, 'T'), query(asLocal("alice")), ok(1, 'T'), query(commit, other),
		}, ""},
		{"assume undone by rollback", nil, []step{
			query(as("carol")), ok(1, 'I'), query(begin), ok(1, 'T'), query(as("alice")), ok(1, 'T'), query(rollback), ok(1, 'I'),
		}, " as carol"},
		{"assume local undone by rollback to savepoint", nil, []step{
			query(begin, tx(rewrite.TxSavepoint, "s")), ok(2, 'T'), query(asLocal("alice")), ok(1, 'T'),
			query(tx(rewrite.TxRollbackTo, "s")), ok(1, 'T'),
		}, ""},
		{"assume in a failed block", nil, []step{
			query(begin), ok(1, 'T'), query(other), failed(0, 'E'), query(as("alice")), failed(0, 'E'), query(commit), ok(1, 'I'),
		}, ""},
		{"assume skipped after an error in its batch", nil, []step{query(other, as("alice")), failed(0, 'I')}, ""},
		{"assume refused", nil, []step{refusedQuery(as("alice"))}, ""},
		{"reset all", []string{"s"}, []step{
			query(set("a"), as("alice"), purpose("analytics", false)), ok(3, 'I'), query(resetAll), ok(1, 'I'),
		}, "s"},
		{"reset all undone by rollback", nil, []step{
			query(as("alice")), ok(1, 'I'), query(begin, resetAll, rollback), ok(3, 'I'),
		}, " as alice"},
		{"purpose local ends with commit", nil, []step{
			query(begin), ok(1, 'T'), query(purpose("analytics", true)), ok(1, 'T'), query(commit), ok(1, 'I'),
		}, ""},
		{"purpose undone by rollback", nil, []step{
			query(begin), ok(1, 'T'), query(purpose("analytics", false)), ok(1, 'T'), query(rollback), ok(1, 'I'),
		}, ""},
		{"purpose kept by commit", nil, []step{
			query(begin), ok(1, 'T'), query(purpose("analytics", false)), ok(1, 'T'), query(commit), ok(1, 'I'),
		}, "/analytics"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p sessionSettings
			p.start(c.initial)
			for _, s := range c.steps {
				if s.answered < 0 {
					for _, op := range s.send {
						if op.mandate != nil {
							p.set(*op.mandate)
						} else {
							p.sent(op.effect, nil)
						}
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
			v := p.current()
			got := strings.Join(v.path, ",")
			if v.identity != nil {
				got += " as " + v.identity.Subject
			}
			if v.purpose != "" {
				got += "/" + v.purpose
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestAnswersTellWhatRan: a message forwarded with a watch learns that it
// ran when its answer comes, and that it did not when an error comes
// before it (the upstream skips the rest of the segment); a later
// segment's messages are not settled by an earlier one's answers.
func TestAnswersTellWhatRan(t *testing.T) {
	var p sessionSettings
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
