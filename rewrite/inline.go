package rewrite

import (
	"github.com/mandate-proxy/mandate/grant"
)

// Inlining. A query level that reads one protected table and nothing else
// does not need a derived table: with no fence, PostgreSQL pulls the derived
// table up anyway, and the plan it reaches is the one of the same query with
// the filter ANDed into its WHERE and every masked column reference replaced
// by its mask. Writing that form directly saves the planner the pull-up,
// which each simple-protocol statement pays because it carries its own
// constants: 6 µs of the 15 µs of backend CPU the rewrite added to a pgbench
// -S statement (filter and mask), measured against PostgreSQL directly.
//
// So a SELECT is inlined when, at its only level, its only FROM item is a
// plain or partitioned table that is protected, and nothing else could see
// the table's columns unmasked or its rows unfiltered:
//   - no fence (the fence rule needs the derived table's OFFSET 0), no
//     sublink, CTE, set operation, VALUES, locking clause, TABLESAMPLE,
//     column aliases (t AS a(x, y)), SELECT INTO, whole-row reference
//     (which covers the functional notation ssn(t); the attribute notation
//     t.ssn for a function ssn is refused before, attribute.go), or
//     schema-qualified column name;
//   - `*` and `t.*` only as whole target list entries, where they are
//     expanded to the table's columns with the masks applied;
//   - no ORDER BY or DISTINCT ON item that is a bare name of a masked
//     column: PostgreSQL matches such a name with the output columns first,
//     which a mask written in its place would no longer do.
//
// The names of output columns stay what PostgreSQL gives the original
// (inlineNameRef); everything else (joins, subqueries, views, writes) keeps
// its derived tables. A statement whose inlined form the deparser cannot
// write back is rewritten with derived tables instead.

// colUse is a column reference that resolved to a wrapped catalog relation.
type colUse struct {
	n     *pgNode // the ColumnRef, replaced in place by its mask
	it    *item
	col   string       // the column's name; "" for * and t.*
	entry *pgResTarget // the target list entry n is the whole value of
}

// noteColUse records a reference for inlining (see inlineSite).
func (w *walker) noteColUse(n *pgNode, it *item, names []string, star bool) {
	if it == nil || !it.wrapped || it.table == nil || w.root == nil || len(w.sites) > 1 {
		return // not inlinable: sites only grow
	}
	u := colUse{n: n, it: it}
	if !star {
		u.col = names[len(names)-1]
	}
	if w.entry != nil && w.entry.Val == n {
		u.entry = w.entry
	}
	w.colUses = append(w.colUses, u)
}

// inlineSite returns the site of a statement that can be inlined, judging
// its shape only; inlineMasks judges what depends on the grants.
func (w *walker) inlineSite() *site {
	r := w.root
	// A reference the catalog cannot resolve may be a column added upstream
	// since it was read, whose mask is not known yet: the derived table
	// lists the catalog's columns only, so there PostgreSQL refuses it.
	if r == nil || w.opts.noInline || len(w.sites) != 1 || w.dangerous || w.sublinks || w.unresolved ||
		len(w.quals)+len(w.rows)+len(w.colFixes)+len(w.targets) > 0 {
		return nil
	}
	s := w.sites[0]
	if s.sample != nil || s.locked || (s.table.Kind != KindTable && s.table.Kind != KindPartitioned) ||
		len(s.rv.GetAlias().GetColnames()) > 0 || // a(x, y): references no longer name the columns
		r.Op != pgSetOperationSETOPNONE || r.WithClause != nil || r.IntoClause != nil ||
		len(r.LockingClause) > 0 || len(r.ValuesLists) > 0 ||
		len(r.FromClause) != 1 || r.FromClause[0] != s.slot || s.slot.GetRangeVar() != s.rv {
		return nil
	}
	for _, u := range w.colUses {
		if u.it.table != s.table {
			return nil
		}
		if u.col == "" && u.entry == nil {
			return nil // t.* inside an expression: a record of every column
		}
	}
	return s
}

// inlineMasks reports whether the site's masks leave the statement
// inlinable: no ORDER BY or DISTINCT ON item is a bare masked name.
func (w *walker) inlineMasks(g *grant.Relation) bool {
	bare := func(n *pgNode) bool {
		cr := n.GetColumnRef()
		if cr == nil || len(cr.Fields) != 1 {
			return false
		}
		_, masked := g.Masks[cr.Fields[0].GetString_().GetSval()]
		return masked
	}
	for _, n := range w.root.SortClause {
		if bare(n.GetSortBy().GetNode()) {
			return false
		}
	}
	for _, n := range w.root.DistinctClause {
		if bare(n) {
			return false
		}
	}
	return true
}

// applyInline writes the site's filter into the statement's WHERE and its
// masks in place of the column references.
func (w *walker) applyInline(s *site, g *grant.Relation, filter grant.Expr, use *RelationUse) error {
	t, r := s.table, w.root
	refname := refName(s.rv)
	if len(t.Columns) == 0 {
		return readDenial(t.QualifiedName(), g, "relation has no columns in the catalog")
	}
	mask := func(col *Column, ref *pgNode) *pgNode {
		if m, ok := g.Masks[col.Name]; ok {
			return use.mask(m, col, ref)
		}
		return nil
	}
	// Output names first: they are read from the references replaced next.
	for _, n := range r.TargetList {
		if rt := n.GetResTarget(); rt != nil && rt.Name == "" {
			if cr := inlineNameRef(rt.Val); cr != nil && len(cr.Fields) > 0 {
				if name := cr.Fields[len(cr.Fields)-1].GetString_().GetSval(); name != "" {
					if _, masked := g.Masks[name]; masked {
						rt.Name = name
					}
				}
			}
		}
	}
	stars := map[*pgResTarget]bool{}
	for _, u := range w.colUses {
		if u.col == "" {
			stars[u.entry] = true
			continue
		}
		col := t.Column(u.col)
		if col == nil {
			// An unqualified name that is no column: PostgreSQL says so.
			// (A qualified one, t.f, would call f(t): refused by the walk.)
			continue
		}
		if expr := mask(col, copyColumnRef(u.n)); expr != nil {
			u.n.Node = expr.Node
		}
	}
	if len(stars) > 0 {
		// From the catalog, masks or not: PostgreSQL's own expansion would
		// include a column added since it was read.
		list := make([]*pgNode, 0, len(r.TargetList)+len(t.Columns))
		for _, n := range r.TargetList {
			if !stars[n.GetResTarget()] {
				list = append(list, n)
				continue
			}
			for _, col := range t.Columns {
				ref := columnRef(refname, col.Name)
				if expr := mask(col, ref); expr != nil {
					list = append(list, resTarget(col.Name, expr))
				} else {
					list = append(list, resTarget("", ref))
				}
			}
		}
		r.TargetList = list
	}
	if b, ok := filter.(grant.Bool); !ok || !bool(b) {
		f, err := filterNode(filter, t, refname)
		if err != nil {
			return readDenial(t.QualifiedName(), g, err.Error())
		}
		if r.WhereClause != nil {
			f = &pgNode{Node: &pgNodeBoolExpr{BoolExpr: &pgBoolExpr{
				Boolop: pgBoolExprTypeANDEXPR, Args: []*pgNode{f, r.WhereClause}, Location: -1,
			}}}
		}
		r.WhereClause = f
	}
	s.rv.Schemaname, s.rv.Catalogname = w.schemaOf(t), ""
	return nil
}

// inlineNameRef returns the column reference PostgreSQL names an unnamed
// target list entry after (FigureColnameInternal), or nil when the name
// comes from something else. Only these nodes pass the name of an operand
// up; a function call, operator or constant names the entry itself.
func inlineNameRef(n *pgNode) *pgColumnRef {
	switch x := n.GetNode().(type) {
	case *pgNodeColumnRef:
		return x.ColumnRef
	case *pgNodeTypeCast:
		return inlineNameRef(x.TypeCast.Arg)
	case *pgNodeCollateClause:
		return inlineNameRef(x.CollateClause.Arg)
	case *pgNodeCaseExpr:
		return inlineNameRef(x.CaseExpr.Defresult)
	case *pgNodeAIndirection:
		for _, i := range x.AIndirection.Indirection {
			if i.GetString_() != nil {
				return nil // (c).field is named field
			}
		}
		return inlineNameRef(x.AIndirection.Arg)
	}
	return nil
}
