package rewrite

import (
	"strings"
	"testing"
)

// TestDeparseAroundMarkerInText: a statement that spells the stand-in of
// a derived table itself (a string constant, here in a scalar subquery
// shaped as the stand-in is) gets every derived table deparsed in place:
// the text a derived table replaces must be its stand-in's, not the
// user's.
func TestDeparseAroundMarkerInText(t *testing.T) {
	cat := testCatalog(t)
	src := &setSource{set: scenarios()["alice"]}
	for _, sql := range []string{
		"SELECT (SELECT E'mandate\\x01derived0\\x01'), a.id FROM accounts a JOIN customers c ON c.id = a.customer_id",
		"SELECT (SELECT E'mandate\\x01derived1\\x01') AS x, a.id FROM accounts a JOIN customers c ON c.id = a.customer_id",
	} {
		opts := testOptions()
		opts.deparseAll = true
		for _, cache := range []*DerivedCache{nil, {}, nil} {
			opts.Derived = cache
			got, err := RewriteSQL(sql, cat, Session{}, src, opts)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			// The user's constant stays once; no FROM item is left a stand-in.
			if strings.Count(got.SQL, derivedMarker) != 1 || strings.Contains(got.SQL, "FROM (SELECT '"+derivedMarker) || strings.Contains(got.SQL, "JOIN (SELECT '"+derivedMarker) {
				t.Errorf("%s: a derived table in the user's place: %q", sql, got.SQL)
			}
		}
	}
}
