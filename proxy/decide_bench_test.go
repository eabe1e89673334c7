package proxy

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecideCached is a repeated statement's cost in the proxy: the
// scope from the live state, the engine's warm grants and the rewrite
// cache's hit (issue target: a cached rewrite ≤ 2 µs). alice's scope has no
// actors and no purpose, so no store round trip is involved.
func BenchmarkDecideCached(b *testing.B) {
	w := startBank(b)
	c := caller{principal: principal{Subject: "alice", Method: "trust"}, clientAddr: "127.0.0.1:1", sessionID: "1", upstreamUser: appRole}
	const sql = "SELECT t.id, t.amount, a.iban FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE t.amount > 100"
	if d := w.enforcer.decideFor(c, sql, nil); d.err != nil {
		b.Fatal(d.err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if d := w.enforcer.decideFor(c, sql, nil); d.err != nil {
			b.Fatal(d.err)
		}
	}
}

// BenchmarkDecideUncached is a statement seen for the first time: parse,
// grants, rewrite. (The comment makes every text new, constants aside, so
// no template serves it.)
func BenchmarkDecideUncached(b *testing.B) {
	benchmarkDecideNew(b, "SELECT amount FROM transactions WHERE id = 1 /* %d */")
}

// BenchmarkDecideTemplate is the simple protocol with literal values: every
// text is new, but differs from the first only in its constants, so a
// template serves it (a scan, no parse).
func BenchmarkDecideTemplate(b *testing.B) {
	benchmarkDecideNew(b, "SELECT amount FROM transactions WHERE id = %d")
}

func benchmarkDecideNew(b *testing.B, format string) {
	w := startBank(b)
	c := caller{principal: principal{Subject: "alice", Method: "trust"}, clientAddr: "127.0.0.1", sessionID: "1", upstreamUser: appRole}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if d := w.enforcer.decideFor(c, fmt.Sprintf(format, i), nil); d.err != nil {
			b.Fatal(d.err)
		}
	}
}

// BenchmarkExecuteCovered is what the first Execute of a portal costs to
// check that its Bind's decision still holds: comparing what that decision
// depended on, not deciding again (compare BenchmarkDecideCached, which is
// what any later Execute of the portal costs, as a FETCH does).
func BenchmarkExecuteCovered(b *testing.B) {
	w := startBank(b)
	s := &session{srv: w.p.srv, login: principal{Subject: "alice", Method: "trust"}}
	s.txStatus.Store('I')
	s.settings.start(nil)
	bound := s.stamp()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%1024 == 0 {
			bound.at = time.Now() // within bindGrace, so that every field is compared
		}
		if !bound.covers(s.stamp()) {
			b.Fatal("nothing changed, yet the Bind's decision is not taken to cover the Execute")
		}
	}
}
