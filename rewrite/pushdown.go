package rewrite

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/mandate-proxy/mandate/grant"
)

// Pushdown: a fenced derived table (OFFSET 0) keeps PostgreSQL from pushing
// any outer qual into it, so "WHERE aid = 5000 AND filler LIKE 'x%'" read
// the whole filtered table to return one row (make bench's plan cost: from
// 0.06 ms to 95 ms). A security-barrier view, which RLS builds on, still
// lets PostgreSQL push leakproof quals into it; mandate does the same by
// hand. A conjunct of a SELECT's WHERE that compares one column of a
// protected relation of that level with constants, through a leakproof
// operator, is copied into that relation's fenced derived table next to
// the filter (and stays where it is). It then runs where it would run in
// an unfenced statement, perhaps ahead of the filter, which a leakproof
// comparison of plain operands may (doc.go, "The fence rule").
//
// Not pushed: a masked column (the outer conjunct compares the masked
// value), a relation on the nullable side of an outer join (the copy would
// turn matches into null-extended rows), one renamed by a column alias
// list, a conjunct of JOIN ON, HAVING or a subquery's correlated
// reference, and anything but column-versus-constants: a constant here is
// a literal, a parameter or a cast PostgreSQL folds at plan time, never
// one it computes per row (a domain's CHECK would fail on hidden rows).

// pushable is a conjunct notePushable found.
type pushable struct {
	conj *pgNode // in the statement's tree; apply copies it
	col  string  // the column it compares
	left bool    // the column is the left operand
}

// notePushable records n, a leakproof top-level conjunct of a SELECT's
// WHERE at sc's level, on its relation's site when it has a pushable shape.
func (w *walker) notePushable(n *pgNode, sc *scope) {
	e := n.GetAExpr()
	if e == nil || e.Lexpr == nil || w.opts.StrictFence {
		return
	}
	var consts []*pgNode
	ref, left := e.Lexpr, true
	switch e.Kind {
	case pgAExprKindAEXPROP:
		consts = []*pgNode{e.Rexpr}
		if ref.GetColumnRef() == nil {
			ref, left, consts = e.Rexpr, false, []*pgNode{e.Lexpr}
		}
	case pgAExprKindAEXPRIN, pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN:
		consts = e.Rexpr.GetList().GetItems()
	default:
		return
	}
	if len(consts) == 0 {
		return
	}
	for _, k := range consts {
		if !w.foldedConstant(k) {
			return
		}
	}
	names := columnNames(ref.GetColumnRef())
	if names == nil {
		return // not a column, or a star
	}
	it, _ := resolveColumn(sc, names, false)
	if it == nil || it.site == nil || it.nullable || it.colsSet || !slices.Contains(sc.items, it) {
		return
	}
	col := names[len(names)-1]
	if !slices.ContainsFunc(it.table.Columns, func(c *Column) bool { return c.Name == col }) {
		return
	}
	it.site.pushed = append(it.site.pushed, pushable{conj: n, col: col, left: left})
}

// foldedConstant reports whether n is a literal of at most longLiteral
// bytes, a parameter, or a cast of one that PostgreSQL computes while
// planning. A parameter must be declared or used only here: the copy, in
// FROM, would be its first use and decide the type of an undeclared one
// (red team round 18, P1: '$1::date … WHERE booked_at >= $1' lost rows).
func (w *walker) foldedConstant(n *pgNode) bool {
	switch x := n.GetNode().(type) {
	case *pgNodeAConst:
		return w.plainOperand(n)
	case *pgNodeParamRef:
		num := x.ParamRef.Number
		return w.paramType(num) != "" || w.paramUses[num] == 1
	case *pgNodeTypeCast:
		return w.plainOperand(n) && w.castFolds(x.TypeCast) && w.foldedConstant(x.TypeCast.Arg)
	}
	return false
}

// maxPushed is how many comparisons (operatorCalls) a derived table gets
// copies of. Each may run ahead of the filter: thousands of them, behind
// a test of the hidden row, made that row's cost tell whether it passed
// (red team round 21, K1), and so did four copies of IN lists (round 22,
// M2). An index scan needs one or two.
const maxPushed = 4

// applicable are s's pushable conjuncts over columns g leaves unmasked, in
// the order written, while they make at most maxPushed comparisons.
func (s *site) applicable(g *grant.Relation) []pushable {
	if g == nil {
		return nil // not readable: apply refuses
	}
	var out []pushable
	calls := 0
	for _, p := range s.pushed {
		if _, masked := g.Masks[p.col]; masked {
			continue
		}
		if calls += operatorCalls(p.conj.GetAExpr()); calls > maxPushed {
			break
		}
		out = append(out, p)
	}
	return out
}

// pushedQuals are copies of s's applicable conjuncts, reading the relation
// as alias. A copy runs on rows the filter hides, so its operators are
// written pg_catalog's whatever other schemas have (a pushable conjunct's
// operator is a leakproof built-in): an operator created since the
// catalog was read, or one of a name no other schema had then, cannot run
// there (red team round 52b, medium: an owner's = ran on every hidden ssn
// through a pushed IN list, and through a pushed = of a name only
// pg_catalog had). IN, whose = SQL cannot qualify, is copied as the
// comparisons it makes, OR'd (NOT IN: <>, AND'd), as PostgreSQL itself
// runs an IN list when its items have no common array type; BETWEEN as
// its two comparisons.
func pushedQuals(s *site, g *grant.Relation, alias string) []*pgNode {
	var out []*pgNode
	for _, p := range s.applicable(g) {
		c := proto.Clone(p.conj).(*pgNode)
		e := c.GetAExpr()
		if p.left {
			e.Lexpr = columnRef(alias, p.col)
		} else {
			e.Rexpr = columnRef(alias, p.col)
		}
		_, name, _ := qualifiedName(e.Name)
		builtin := []*pgNode{strNode("pg_catalog"), strNode(name)}
		switch e.Kind {
		case pgAExprKindAEXPRIN:
			var terms []*pgNode
			for i, item := range e.Rexpr.GetList().GetItems() {
				x := e.Lexpr
				if i > 0 {
					x = columnRef(alias, p.col)
				}
				terms = append(terms, opNode(copyLeaves(builtin), x, item))
			}
			c = terms[0]
			if join := pgBoolExprTypeOREXPR; len(terms) > 1 {
				if name == "<>" {
					join = pgBoolExprTypeANDEXPR // NOT IN (transformAExprIn)
				}
				c = boolNode(join, terms...)
			}
		case pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN:
			lower, upper := betweenOperators(e.Kind)
			c = expandBetween(e, [2][]*pgNode{{strNode("pg_catalog"), strNode(lower)}, {strNode("pg_catalog"), strNode(upper)}})
		default:
			e.Name = builtin
		}
		out = append(out, c)
	}
	return out
}
