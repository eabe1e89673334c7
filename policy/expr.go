package policy

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/mandate-proxy/mandate/grant"
)

// and is the simplified conjunction of terms: nested Ands are flattened,
// True terms dropped, and any False term makes the whole False.
func and(terms ...grant.Expr) grant.Expr {
	out := make([]grant.Expr, 0, len(terms))
	for _, t := range terms {
		switch t := t.(type) {
		case grant.Bool:
			if !t {
				return grant.False
			}
		case grant.And:
			for _, u := range t.Terms {
				if u == grant.False {
					return grant.False
				}
			}
			out = append(out, t.Terms...)
		default:
			out = append(out, t)
		}
	}
	return collapse(out, grant.True, func(ts []grant.Expr) grant.Expr { return grant.And{Terms: ts} })
}

// or is the simplified disjunction of terms, the dual of and.
func or(terms ...grant.Expr) grant.Expr {
	out := make([]grant.Expr, 0, len(terms))
	for _, t := range terms {
		switch t := t.(type) {
		case grant.Bool:
			if t {
				return grant.True
			}
		case grant.Or:
			for _, u := range t.Terms {
				if u == grant.True {
					return grant.True
				}
			}
			out = append(out, t.Terms...)
		default:
			out = append(out, t)
		}
	}
	return collapse(out, grant.False, func(ts []grant.Expr) grant.Expr { return grant.Or{Terms: ts} })
}

// collapse drops duplicate terms (parties often contribute the same filter)
// and unwraps a single term.
func collapse(terms []grant.Expr, empty grant.Bool, wrap func([]grant.Expr) grant.Expr) grant.Expr {
	switch len(terms) {
	case 0:
		return empty
	case 1:
		return terms[0]
	}
	seen := make(map[string]bool, len(terms))
	uniq := terms[:0]
	for _, t := range terms {
		k := grant.Format(t)
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, t)
		}
	}
	if len(uniq) == 1 {
		return uniq[0]
	}
	return wrap(uniq)
}

// not negates x, folding constants and double negation.
func not(x grant.Expr) grant.Expr {
	switch x := x.(type) {
	case grant.Bool:
		return !x
	case grant.Not:
		return x.X
	}
	return grant.Not{X: x}
}

// sortLiterals orders set values deterministically (Cedar sets are unordered).
func sortLiterals(ls []grant.Literal) {
	slices.SortFunc(ls, func(a, b grant.Literal) int {
		ai, aok := a.V.(int64)
		bi, bok := b.V.(int64)
		if aok && bok {
			return cmp.Compare(ai, bi)
		}
		return cmp.Compare(fmt.Sprintf("%T%v", a.V, a.V), fmt.Sprintf("%T%v", b.V, b.V))
	})
}
