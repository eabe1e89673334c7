package policy

import "testing"

// A statement joining accounts and transactions, issued by the assistant
// acting for alice: two parties, two relations, masks and row filters.
func benchStatement(b *testing.B) (*Engine, Scope, []RelationInfo) {
	e := openBank(b, bankSources, Options{})
	s := agentScope
	s.Agent = assistantAgent()
	return e, s, []RelationInfo{bankTables["accounts"], bankTables["transactions"]}
}

// BenchmarkGrantsWarm is the statement path when the grants are cached.
func BenchmarkGrantsWarm(b *testing.B) {
	e, s, rels := benchStatement(b)
	if _, err := e.GrantSet(s, rels, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.GrantSet(s, rels, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGrantsCold is the statement path right after live state changed:
// every iteration has a new state version, so nothing is cached.
func BenchmarkGrantsCold(b *testing.B) {
	e, s, rels := benchStatement(b)
	b.ReportAllocs()
	var state uint64
	for b.Loop() {
		state++
		if _, err := e.GrantSet(s, rels, state); err != nil {
			b.Fatal(err)
		}
	}
}
