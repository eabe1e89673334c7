package rewrite

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Qualified names: the rewriter decides which function or operator
// PostgreSQL will run for each call by re-doing its overload resolution
// (coerce.go). Where that decision names one schema and another schema
// has a function or operator of the same name, the forwarded statement
// says so: pg_catalog.lower(x), a OPERATOR(pg_catalog.=) b. PostgreSQL
// then looks in that schema only, so an overload elsewhere (an owner's
// =(text, varchar), say) cannot be its pick even where mandate's model of
// the resolution rules is wrong; within the one schema the pick is the
// same as before, as the model's winner was the best candidate of all.
//
// BETWEEN is written as the comparisons PostgreSQL makes of it
// (transformAExprBetween), each qualified. What the grammar cannot qualify
// keeps the model alone: the = of IN (…), IS DISTINCT FROM, NULLIF,
// CASE x WHEN and USING/NATURAL joins (docs/security.md).

// nameFix writes a function or operator name qualified with the schema
// the walker resolved it to. like is set for LIKE, ILIKE and SIMILAR TO,
// whose qualified form is the operator they stand for (transformAExprOp
// treats them as that operator; the deparser writes no qualified LIKE).
type nameFix struct {
	names        *[]*pgNode
	name, schema string
	like         *pgAExpr
	// call is the function call named, whose name splicing may qualify
	// in the client's text; nil for an operator, which needs the deparser
	// (OPERATOR(s.op) binds as no bare operator does but its parentheses).
	call *pgFuncCall
}

// nameHomes maps each function or operator name to the schemas that have
// one of that name.
type nameHomes map[string][]string

func (h nameHomes) add(name, schema string) {
	for _, s := range h[name] {
		if s == schema {
			return
		}
	}
	h[name] = append(h[name], schema)
}

// elsewhere reports whether a schema other than schema has name.
func (h nameHomes) elsewhere(name, schema string) bool {
	for _, s := range h[name] {
		if s != schema {
			return true
		}
	}
	return false
}

// qualifyName records that names, the name of a call to name as written
// (one part, or none for the = of x IN (SELECT …)), must say schema, the
// one schema every check of it resolved to ("" when the checks allow
// several), if another schema has an operator of the name too.
func (w *walker) qualifyName(names *[]*pgNode, name, schema string, like *pgAExpr) {
	if schema != "" && len(*names) <= 1 && w.cat.opHomes.elsewhere(name, schema) {
		w.names = append(w.names, nameFix{names: names, name: name, schema: schema, like: like})
	}
}

// qualifyCall is qualifyName for a function call written unqualified (the
// grammar's pg_catalog.json_object for json_object(…) included: the text
// still needs the schema, for PostgreSQL 15 looks that up on the path).
func (w *walker) qualifyCall(fc *pgFuncCall, name, schema string) {
	if schema != "" && w.cat.funcHomes.elsewhere(name, schema) {
		w.names = append(w.names, nameFix{names: &fc.Funcname, name: name, schema: schema, call: fc})
	}
}

// sameSchema folds the schemas several checks of one name resolved to:
// the common one, or "" when they differ.
func sameSchema(schemas ...string) string {
	for _, s := range schemas[1:] {
		if s != schemas[0] {
			return ""
		}
	}
	return schemas[0]
}

func (f nameFix) apply() {
	*f.names = []*pgNode{strNode(f.schema), strNode(f.name)}
	if f.like != nil {
		f.like.Kind = pgAExprKindAEXPROP
	}
}

// betweenFix writes a BETWEEN (found by its location, so mandate's own
// copies of it, a conjunct pushed beside a filter, are written so too) as
// the comparisons PostgreSQL analyses it as, x copied into each as
// PostgreSQL copies it (a volatile x runs as often as it did):
// x >= a AND x <= b; NOT: x < a OR x > b; SYMMETRIC: both orders of the
// bounds, OR'd (NOT: AND'd). ops are the two operators' names, written
// qualified or not.
type betweenFix struct {
	loc int32
	ops [2][]*pgNode
}

// qualifyBetween records a betweenFix for the BETWEEN e when one of its
// two operators, lower and upper, resolved to one schema ("" when not) and
// another schema has an operator of its name.
func (w *walker) qualifyBetween(e *pgAExpr, names, schemas [2]string) {
	f := betweenFix{loc: e.Location}
	qualified := false
	for k, name := range names {
		f.ops[k] = []*pgNode{strNode(name)}
		if schemas[k] != "" && w.cat.opHomes.elsewhere(name, schemas[k]) {
			f.ops[k] = []*pgNode{strNode(schemas[k]), strNode(name)}
			qualified = true
		}
	}
	if qualified && e.Location >= 0 && !w.opts.noBetweens {
		w.betweens = append(w.betweens, f)
	}
}

// expandBetweens applies fixes to the statement stmt once every other fix
// is in place, so the copies of x hold what the statement reads, derived
// tables included (red team round 51a, high: a copy of x made before the
// derived tables replaced their relations read them unfiltered).
func expandBetweens(stmt *pgNode, fixes []betweenFix) {
	if len(fixes) == 0 {
		return
	}
	ops := make(map[int32][2][]*pgNode, len(fixes))
	for _, f := range fixes {
		ops[f.loc] = f.ops
	}
	var found []*pgNode
	visitMessages(stmt.ProtoReflect(), func(m protoreflect.Message) bool {
		if n, ok := m.Interface().(*pgNode); ok && isBetween(n.GetAExpr()) {
			if _, ok := ops[n.GetAExpr().Location]; ok && !holdsBetween(n.GetAExpr()) {
				found = append(found, n)
			}
		}
		return true
	})
	for _, n := range found {
		n.Node = expandBetween(n.GetAExpr(), ops[n.GetAExpr().Location]).Node
	}
}

// holdsBetween reports whether a BETWEEN's operand or bounds hold another:
// only the innermost are written out, as copying one into the copies of
// another is exponential in the nesting (red team round 52b: nine levels
// of SYMMETRIC took 19 s and 2.4 GB of the proxy's memory). The others
// keep the model alone, as the constructs SQL cannot qualify do.
func holdsBetween(e *pgAExpr) bool {
	held := false
	for _, n := range append([]*pgNode{e.Lexpr}, e.Rexpr.GetList().GetItems()...) {
		visitMessages(n.ProtoReflect(), func(m protoreflect.Message) bool {
			if x, ok := m.Interface().(*pgAExpr); ok && isBetween(x) {
				held = true
			}
			return !held
		})
	}
	return held
}

// betweenOperators are the operators a BETWEEN of kind k compares with:
// >= and <=; NOT BETWEEN's < and >.
func betweenOperators(k pgAExprKind) (lower, upper string) {
	if k == pgAExprKindAEXPRNOTBETWEEN || k == pgAExprKindAEXPRNOTBETWEENSYM {
		return "<", ">"
	}
	return ">=", "<="
}

func isBetween(e *pgAExpr) bool {
	switch e.GetKind() {
	case pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN, pgAExprKindAEXPRBETWEENSYM, pgAExprKindAEXPRNOTBETWEENSYM:
		return len(e.Rexpr.GetList().GetItems()) == 2
	}
	return false
}

func expandBetween(e *pgAExpr, ops [2][]*pgNode) *pgNode {
	bounds := e.Rexpr.GetList().GetItems()
	x, a, b := e.Lexpr, bounds[0], bounds[1]
	join, outer := pgBoolExprTypeANDEXPR, pgBoolExprTypeOREXPR
	if e.Kind == pgAExprKindAEXPRNOTBETWEEN || e.Kind == pgAExprKindAEXPRNOTBETWEENSYM {
		join, outer = outer, join
	}
	clone := func(n *pgNode) *pgNode { return proto.Clone(n).(*pgNode) }
	name := func(k int) []*pgNode { return copyLeaves(ops[k]) }
	pair := func(x1, lo, x2, hi *pgNode) *pgNode {
		return boolNode(join, opNode(name(0), x1, lo), opNode(name(1), x2, hi))
	}
	if e.Kind == pgAExprKindAEXPRBETWEENSYM || e.Kind == pgAExprKindAEXPRNOTBETWEENSYM {
		return boolNode(outer, pair(clone(x), clone(a), clone(x), clone(b)), pair(clone(x), b, x, a))
	}
	return pair(x, a, clone(x), b)
}

func opNode(name []*pgNode, l, r *pgNode) *pgNode {
	return &pgNode{Node: &pgNodeAExpr{AExpr: &pgAExpr{Kind: pgAExprKindAEXPROP, Name: name, Lexpr: l, Rexpr: r, Location: -1}}}
}

func boolNode(op pgBoolExprType, args ...*pgNode) *pgNode {
	return &pgNode{Node: &pgNodeBoolExpr{BoolExpr: &pgBoolExpr{Boolop: op, Args: args, Location: -1}}}
}
