package proxy

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mandate-proxy/mandate/policy"
)

// TestTemplateDecisionsEqualColdOnes: statements that differ only in their
// constants are served from a template after the first, and each such
// decision is exactly what a cold rewrite (an enforcer with an empty
// cache) decides, for personas with filters and masks.
func TestTemplateDecisionsEqualColdOnes(t *testing.T) {
	w := startBank(t)
	setUpPersonaState(t, w)
	m := NewMetrics()
	callers := map[string]caller{
		"alice":     {principal: principal{Subject: "alice", Method: "jwt"}},
		"bob":       {principal: principal{Subject: "alice", Actors: []policy.Actor{{Kind: policy.ActorDelegate, ID: "bob"}}, Method: "jwt"}},
		"assistant": {principal: principal{Subject: "alice", Actors: []policy.Actor{{Kind: policy.ActorAgent, ID: "assistant"}}, Method: "jwt"}},
		"dana":      {principal: principal{Subject: "dana", Method: "jwt", Claims: map[string]any{"purpose": "analytics"}}},
	}
	shapes := []func(i int) string{
		func(i int) string { return fmt.Sprintf("SELECT id, iban, balance FROM accounts WHERE id = %d", i) },
		func(i int) string {
			return fmt.Sprintf("SELECT t.amount, a.iban FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE t.amount > %d AND a.iban <> 'X%d'", i, i)
		},
		func(i int) string {
			return fmt.Sprintf("SELECT count(*) FROM transactions WHERE amount BETWEEN %d AND 1e6 LIMIT 3", i)
		},
	}
	for name, c := range callers {
		c.clientAddr, c.sessionID, c.upstreamUser = "127.0.0.1", "1", appRole
		for _, shape := range shapes {
			for i := 1; i <= 4; i++ {
				sql := shape(i)
				got := w.enforcer.decideFor(c, sql, m)
				cold := (&Enforcer{Engine: w.enforcer.Engine, State: w.enforcer.State, Catalogs: w.enforcer.Catalogs, Now: w.enforcer.Now}).decideFor(c, sql, nil)
				if (got.err == nil) != (cold.err == nil) || got.sql != cold.sql {
					t.Fatalf("%s: %q\ntemplate: %q (%v)\ncold:     %q (%v)", name, sql, got.sql, got.err, cold.sql, cold.err)
				}
			}
		}
	}
	hits := testutil.ToFloat64(m.rewriteCache[cacheTemplate])
	// Each persona's first statement of a shape is rewritten (its grants
	// differ from the others'); the next three are templates.
	if want := float64(len(callers) * len(shapes) * 3); hits != want {
		t.Errorf("%v statements served from templates, want %v", hits, want)
	}
}
