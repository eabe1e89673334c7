package rewrite

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// ectx is where an expression sits, for the fence rule (doc.go).
type ectx struct {
	// qual: the expression is, or may become after pull-up, a qual that the
	// planner can evaluate at the scan of a protected relation.
	qual bool
	// leaky: an enclosing function, operator or cast is not leakproof.
	leaky bool
	// wholeRow: the node is a function argument, where t.* means t's
	// whole row rather than its columns. It holds for the node itself only.
	wholeRow bool
	// once: the qual is evaluated once per scan (LIMIT, OFFSET, functions
	// and TABLESAMPLE arguments in FROM), not per row: an error of an
	// expression that reads no column cannot depend on rows there (fold.go).
	once bool
}

func (w *walker) exprs(ns []*pgNode, sc *scope, c ectx) error {
	for _, n := range ns {
		if err := w.expr(n, sc, c); err != nil {
			return err
		}
	}
	return nil
}

// expr walks an expression. Node kinds are an allow-list: anything not named
// here is refused, so a node kind added to PostgreSQL's grammar can never
// carry a relation reference past the rewriter.
func (w *walker) expr(n *pgNode, sc *scope, c ectx) error {
	if n == nil || n.Node == nil {
		return nil
	}
	if err := w.enter(); err != nil {
		return err
	}
	defer w.leave()
	wholeRow := c.wholeRow
	c.wholeRow = false
	switch x := n.Node.(type) {
	case *pgNodeParamRef:
		// PostgreSQL refuses $0 too, but the deparser would print it as "?".
		if x.ParamRef.Number < 1 {
			return &Error{Code: codeUndefinedParameter, Msg: fmt.Sprintf("there is no parameter $%d", x.ParamRef.Number)}
		}
		return nil
	case *pgNodeAConst:
		w.longConstant(x.AConst, c)
		return nil
	case *pgNodeString, *pgNodeInteger, *pgNodeFloat,
		*pgNodeBoolean, *pgNodeBitString, *pgNodeAStar,
		*pgNodeSetToDefault, *pgNodeCurrentOfExpr:
		return nil
	case *pgNodeSqlvalueFunction:
		// CURRENT_DATE and the like: stable, so computed at run time.
		w.rowFreeValue(c, false)
		return nil
	case *pgNodeColumnRef:
		return w.columnRef(n, x.ColumnRef, sc, c, wholeRow)
	case *pgNodeResTarget:
		entry := w.entry
		w.entry = x.ResTarget
		err := w.children(n, sc, c)
		w.entry = entry
		return err
	case *pgNodeFuncCall:
		return w.funcCall(x.FuncCall, sc, c)
	case *pgNodeAExpr:
		return w.aExpr(x.AExpr, sc, c)
	case *pgNodeSubLink:
		return w.subLink(x.SubLink, sc, c)
	case *pgNodeTypeCast:
		// A cast of row data can fail on some values (text → int), which is
		// a data-dependent error. A cast of a constant is harmless only when
		// PostgreSQL computes it at parse or plan time (fold.go): a domain's
		// CHECK, say, is evaluated per row.
		tc := x.TypeCast
		if err := w.checkCast(tc, sc); err != nil {
			return err
		}
		switch {
		case w.binaryCoercible(tc, sc) || w.castFolds(tc):
		case !w.readsRows(tc.Arg):
			w.leakyNode(&c)
			w.rowFreeValue(c, true)
		default:
			w.leakyNode(&c)
		}
		if err := w.expr(tc.Arg, sc, c); err != nil {
			return err
		}
		return w.typeName(tc.TypeName)
	case *pgNodeCoalesceExpr:
		w.gate(&c)
		w.uncharged(n, c)
		return w.children(n, sc, c)
	case *pgNodeCaseExpr:
		w.gate(&c)
		if x.CaseExpr.Arg != nil {
			// CASE x WHEN v compares with the operator = found by name, x
			// made text when it is an untyped literal or parameter
			// (transformCaseExpr; red team round 44a: CASE 'a' WHEN t.id
			// ran an owner's =(text, int8)).
			lt, lflex := w.exprType(x.CaseExpr.Arg, sc)
			if lt == "" && lflex {
				lt, lflex = "text", false
			}
			for _, a := range x.CaseExpr.Args {
				rt, rflex := w.exprType(a.GetCaseWhen().GetExpr(), sc)
				exact, known := operandPair(lt, lflex, rt, rflex)
				if _, err := w.checkOperator("", "=", false, exact, known); err != nil {
					return err
				}
			}
			w.leakyNode(&c) // of types not inferred for leakproofness
		}
		return w.children(n, sc, c)
	case *pgNodeSortBy:
		if op := x.SortBy.UseOp; len(op) > 0 && !w.sortByOutput[x.SortBy] {
			// ORDER BY x USING op: resolved by name like any operator.
			schema, name, err := qualifiedName(op)
			if err != nil {
				return err
			}
			// PostgreSQL looks it up for two operands of the sort key's
			// type.
			t, _ := w.exprType(x.SortBy.Node, sc)
			picked, err := w.checkOperator(schema, name, false, [2]string{t, t}, [2]string{t, t})
			if err != nil {
				return err
			}
			w.qualifyName(&x.SortBy.UseOp, name, picked, nil)
		}
		return w.children(n, sc, c)
	case *pgNodeAIndirection:
		// (e).f may be the function call f(e) (attribute.go).
		if err := w.checkIndirection(x.AIndirection, sc); err != nil {
			return err
		}
		w.leakyNode(&c)
		return w.children(n, sc, c)
	case *pgNodeMinMaxExpr:
		w.leakyNode(&c)
		return w.children(n, sc, c)
	case *pgNodeXmlExpr, *pgNodeXmlSerialize:
		// Never folded, even of constants: XMLPARSE(DOCUMENT '<') fails
		// per row.
		w.leakyNode(&c)
		if !w.readsRows(n) {
			w.rowFreeValue(c, true)
		}
		return w.children(n, sc, c)
	case *pgNodeAArrayExpr, *pgNodeRowExpr:
		// A constructor's cost is its size, which the client chooses and
		// the planner does not count: a qual built from one runs ahead of
		// the filter, and gated by a leakproof CASE its run time tells a
		// hidden row's value (red team round 11, L1). Of columns, it is
		// leaky; of constants, PostgreSQL folds it.
		if w.readsRows(n) {
			w.leakyNode(&c)
		}
		return w.children(n, sc, c)
	case *pgNodeBoolExpr, *pgNodeNullTest, *pgNodeBooleanTest, *pgNodeCaseWhen:
		w.uncharged(n, c)
		return w.children(n, sc, c)
	case *pgNodeAIndices,
		*pgNodeCollateClause, *pgNodeNamedArgExpr, *pgNodeList,
		*pgNodeMultiAssignRef, *pgNodeWindowDef, *pgNodeGroupingSet,
		*pgNodeGroupingFunc, *pgNodeDefElem, *pgNodeIndexElem:
		return w.children(n, sc, c)
	case *pgNodeTypeName:
		return w.typeName(x.TypeName)
	case *pgNodeColumnDef:
		d := x.ColumnDef
		if len(d.Constraints) > 0 || d.RawDefault != nil || d.CookedDefault != nil {
			return unsupported("column constraints are not supported here")
		}
		return w.typeName(d.TypeName)
	}
	return unsupported("%s is not supported through mandate", nodeKind(n))
}

// children walks the node-typed fields of n's variant generically. Nested
// messages that are not Nodes are walked only when known to hold
// expressions; anything else is refused.
func (w *walker) children(n *pgNode, sc *scope, c ectx) error {
	m := n.ProtoReflect()
	fd := m.WhichOneof(nodeOneof)
	if fd == nil {
		return nil
	}
	return w.fields(m.Get(fd).Message(), sc, c)
}

var nodeOneof = (&pgNode{}).ProtoReflect().Descriptor().Oneofs().ByName("node")

func (w *walker) fields(m protoreflect.Message, sc *scope, c ectx) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = w.field(l.Get(i).Message(), sc, c)
			}
		} else {
			err = w.field(v.Message(), sc, c)
		}
		return err == nil
	})
	return err
}

func (w *walker) field(m protoreflect.Message, sc *scope, c ectx) error {
	switch v := m.Interface().(type) {
	case *pgNode:
		return w.expr(v, sc, c)
	case *pgTypeName:
		return w.typeName(v)
	case *pgWindowDef, *pgCollateClause:
		return w.fields(m, sc, c)
	}
	return unsupported("%s is not supported through mandate", m.Descriptor().Name())
}

// typeName allows type names; their typmods are constants.
// checkCast refuses a cast that may run a function off the allow-list,
// one of Catalog.Casts (an extension's, an owner's CREATE CAST): red team
// round 35 read every customer through g::bigint::customer_card, and round
// 36 reached such a cast through a domain over its type, an array of it, a
// composite holding it and a domain source. So while any cast function is
// off the allow-list, a cast of anything but an untyped literal (read by
// its type's input function, no cast) is allowed only to a built-in type
// certain to be pg_catalog's, and then only from a built-in source type
// unless no such cast ends in that type.
func (w *walker) checkCast(tc *pgTypeCast, sc *scope) error {
	if len(w.cat.Casts) == 0 || tc.TypeName == nil {
		return nil
	}
	if c := tc.Arg.GetAConst(); c != nil && (c.GetSval() != nil || c.Isnull) {
		return nil
	}
	banned := w.bannedCasts()
	if len(banned) == 0 {
		return nil
	}
	target, _, builtin := w.builtinType(tc.TypeName)
	if !builtin || !knownBuiltin(target) {
		return denied("cast to %s is not allowed: while %s, a cast function, is off the function allow-list, casts to types outside pg_catalog are refused (a domain, array or composite may hold the type it makes)", typeNameText(tc.TypeName), banned[0].Function)
	}
	src, _ := w.exprType(tc.Arg, sc)
	for _, c := range banned {
		if c.Target == target && (src == "" || !knownBuiltin(src) || canonicalType(c.Source) == src) {
			return denied("cast to %s is not allowed: it may run %s, which is not on the function allow-list", target, c.Function)
		}
	}
	return nil
}

// bannedCasts are the catalog's casts whose function is off the allow-list.
// Worked out once per walk: every cast node and JSON builder asks.
func (w *walker) bannedCasts() []*Cast {
	if w.bannedDone {
		return w.banned
	}
	w.bannedDone = true
	for _, c := range w.cat.Casts {
		schema, name, _ := strings.Cut(c.Function, ".")
		if w.checkFunction(schema, name, false, &pgFuncCall{}) != nil {
			w.banned = append(w.banned, c)
		}
	}
	return w.banned
}

// jsonBuilders are the functions that turn a value of a type that is not
// built-in (an enum, a range, an extension's) into JSON through its cast to
// json, if it has one, run as a function (json_categorize_type): inside
// arrays and composites too.
var jsonBuilders = map[string]bool{"to_json": true, "to_jsonb": true, "row_to_json": true,
	"array_to_json": true, "json_agg": true, "jsonb_agg": true, "json_build_array": true,
	"jsonb_build_array": true, "json_build_object": true, "jsonb_build_object": true,
	"json_object_agg": true, "jsonb_object_agg": true, "json_agg_strict": true, "jsonb_agg_strict": true,
	"json_object_agg_strict": true, "jsonb_object_agg_strict": true, "json_object_agg_unique": true,
	"jsonb_object_agg_unique": true, "json_object_agg_unique_strict": true, "jsonb_object_agg_unique_strict": true}

// checkJSONBuilder refuses a JSON builder call that may run a cast to json
// off the allow-list (red team round 37: to_json('[1,12]'::cust_range) ran
// an owner's cast function and returned every customer): while one is, each
// argument must be an untyped literal or of a built-in type mandate knows.
func (w *walker) checkJSONBuilder(name string, fc *pgFuncCall, sc *scope) error {
	var toJSON *Cast
	for _, c := range w.bannedCasts() {
		if c.Target == "json" || c.Target == "jsonb" {
			toJSON = c
			break
		}
	}
	if toJSON == nil {
		return nil
	}
	for _, a := range fc.Args {
		if a.GetAConst() != nil {
			continue
		}
		if t, _ := w.exprType(a, sc); t == "" || !knownBuiltin(t) {
			return denied("function %s is not allowed here: its argument may be of a type whose cast to json runs %s, which is not on the function allow-list; cast the argument to a built-in type", name, toJSON.Function)
		}
	}
	return nil
}

// knownBuiltin reports whether t (an internal name) is a pg_catalog base
// type mandate knows: one no domain or composite can be.
func knownBuiltin(t string) bool {
	return immutableCast[t] || trustedInput[t] || literalTypes[t] != "" || t == "float4" || t == "text"
}

// typeNameText is a type name as written, for messages.
func typeNameText(tn *pgTypeName) string {
	var parts []string
	for _, n := range tn.Names {
		parts = append(parts, n.GetString_().GetSval())
	}
	return strings.Join(parts, ".")
}

func (w *walker) typeName(t *pgTypeName) error {
	if t == nil {
		return nil
	}
	if err := w.exprs(t.Typmods, nil, ectx{}); err != nil {
		return err
	}
	return w.exprs(t.ArrayBounds, nil, ectx{})
}

func nodeKind(n *pgNode) string {
	if n == nil || n.Node == nil {
		return "empty node"
	}
	fd := n.ProtoReflect().WhichOneof(nodeOneof)
	if fd == nil {
		return "empty node"
	}
	return string(fd.Message().Name())
}

// binaryCoercible recognises the casts that cannot fail and cost nothing:
// to pg_catalog's text (a domain over text of that name, earlier on the
// search path, could fail) from text, varchar, a literal or a parameter.
// From another type the cast runs a function whose cost is the value's
// size (char(n) → text is rtrim, 10 MB of a char(10485760) per row: red
// team round 13), so it is treated like any other cast.
func (w *walker) binaryCoercible(tc *pgTypeCast, sc *scope) bool {
	t, arr, ok := w.builtinType(tc.TypeName)
	if !ok || arr || t != "text" || len(tc.TypeName.Typmods) > 0 {
		return false
	}
	switch from, flexible := w.exprType(tc.Arg, sc); {
	case flexible:
		return from == "" // an untyped literal or a parameter
	default:
		return from == "text" || from == "varchar"
	}
}

// columnRef records whether a reference may carry protected data, marks the
// statement dangerous when it does under a leaky expression in a qual, and
// shortens schema-qualified references to wrapped relations.
func (w *walker) columnRef(n *pgNode, cr *pgColumnRef, sc *scope, c ectx, wholeRow bool) error {
	names := make([]string, 0, len(cr.Fields))
	star := false
	for i, f := range cr.Fields {
		switch x := f.Node.(type) {
		case *pgNodeString:
			names = append(names, x.String_.Sval)
		case *pgNodeAStar:
			if i != len(cr.Fields)-1 {
				return unsupported("unexpected * in column reference")
			}
			star = true
		default:
			return unsupported("%s in column reference is not supported", nodeKind(f))
		}
	}
	if !star && len(names) > 0 && systemColumns[names[len(names)-1]] {
		if rel := wrappedSystemColumn(sc, names); rel != "" {
			return unsupported("system column %s of %s is not available through mandate: "+
				"the relation is read through a derived table, which has no system columns", names[len(names)-1], rel)
		}
	}
	if !star {
		// x.f may be the function call f(x) (attribute.go).
		if err := w.checkQualifiedColumn(sc, names); err != nil {
			return err
		}
	}
	it, carries := resolveColumn(sc, names, star)
	if c.qual && !c.once {
		// Not in an aggregate's arguments, say, which run above the scans.
		w.noteQualRead(it, names, star, carries)
		if w.conj != nil {
			w.conj.leaky = w.conj.leaky || c.leaky
			w.conj.read(it)
		}
		if readsView(sc, it, names, star) {
			// A view's column is its defining expression once PostgreSQL
			// expands the view: pg_views.definition is pg_get_viewdef(),
			// slow enough to time one hidden row from a LATERAL subquery
			// (red team round 17, V1). The walk cannot see the expression.
			w.dangerous = true
		}
	}
	w.unresolved = w.unresolved || it == nil
	w.noteColUse(n, it, names, star)
	if carries {
		w.carryRefs++
		if c.qual && c.leaky {
			w.dangerous = true
		}
	}
	quals := len(names)
	if !star {
		quals--
	}
	if it != nil && it.wrapped && !it.aliased && quals >= 2 {
		w.colFixes = append(w.colFixes, colFix{ref: cr, drop: quals - 1})
	}
	w.noteWholeRow(n, sc, names, star, wholeRow)
	if len(w.targets) > 0 && !w.noTargetReads {
		return w.noteTargetRead(n, sc, names, star)
	}
	return nil
}

// noteQualRead records a column read in a per-row qual (walker.qualReads)
// of the item it resolved to (nil: ambiguous; carries: it may carry
// protected data).
func (w *walker) noteQualRead(it *item, names []string, star, carries bool) {
	switch {
	case it != nil && it.site != nil:
		r := qualRead{site: it.site}
		if !star {
			if col := it.tableColumn(names[len(names)-1]); col != nil {
				r.col = col.Name
			}
		}
		w.qualReads = append(w.qualReads, r)
	case it != nil:
		// A join alias shows its sides' columns (red team round 25:
		// j.balance of "USING (balance) AS j" ran dana's round mask).
		for _, s := range it.under {
			w.qualReads = append(w.qualReads, qualRead{site: s})
		}
	case carries:
		w.qualReads = append(w.qualReads, qualRead{})
	}
}

// readsView reports whether a column reference may read a view's column
// or whole row: it, the item it resolved to, or when it resolved to none,
// any item an unqualified name may resolve to.
func readsView(sc *scope, it *item, names []string, star bool) bool {
	isView := func(it *item) bool { return it != nil && it.table != nil && it.table.Kind == KindView }
	if it != nil {
		return isView(it)
	}
	_, col, done := qualifiedItem(sc, names, star)
	if done {
		return false
	}
	return slices.ContainsFunc(columnCandidates(sc, col, star), isView)
}

// systemColumns are PostgreSQL's system column names; no user column may
// take them, so a reference by one of these names is always a system column
// when it names a table.
var systemColumns = map[string]bool{
	"ctid": true, "tableoid": true, "xmin": true, "xmax": true, "cmin": true, "cmax": true,
}

// wrappedSystemColumn returns the protected relation a system column
// reference would read, or "". Qualified, it is the relation the qualifier
// names; unqualified, PostgreSQL takes it from the innermost level that has
// a table, so any wrapped item up to that level counts (conservatively, as
// a derived table of that level might also expose the name).
func wrappedSystemColumn(sc *scope, names []string) string {
	if len(names) > 1 {
		if it, _ := resolveColumn(sc, names, false); it != nil && it.wrapped {
			return it.table.QualifiedName()
		}
		return ""
	}
	for s := sc; s != nil; s = s.parent {
		tables := false
		for _, it := range s.items {
			if it.wrapped {
				return it.table.QualifiedName()
			}
			tables = tables || it.table != nil
		}
		if tables {
			return ""
		}
	}
	return ""
}

// noteWholeRow records a whole-row reference to a wrapped relation: a bare
// name that is no column of any FROM item in scope (PostgreSQL tries
// columns first, at every level), or t.* as a function argument. Where it
// cannot be sure (an item whose columns it does not know, t.* elsewhere) it
// leaves the reference alone: it then reads as an anonymous record, which
// hides nothing more or less.
func (w *walker) noteWholeRow(n *pgNode, sc *scope, names []string, star, funcArg bool) {
	var it *item
	switch {
	case star && funcArg && len(names) == 1:
		it, _ = resolveColumn(sc, names, true)
	case !star && len(names) == 1:
		for s := sc; s != nil; s = s.parent {
			for _, i := range s.items {
				if i.table == nil || len(i.table.Columns) == 0 || i.table.Column(names[0]) != nil {
					return // it may name a column
				}
			}
		}
		it, _ = resolveColumn(sc, names, false)
		if it != nil && it.refname != names[0] {
			return
		}
	}
	if it == nil || !it.wrapped {
		return
	}
	f := wholeRowFix{ref: n, it: it}
	if e := w.entry; e != nil && e.Name == "" {
		switch {
		case e.Val == n:
			f.entry = e
		case inlineNameRef(e.Val) == n.GetColumnRef():
			f.entry, f.nested = e, true // red team round 33: named "row"
		}
	}
	w.rows = append(w.rows, f)
}

// resolveColumn finds what a column reference refers to: the one item it
// names, or nil when it may name several (or none the rewriter knows).
// carries is true when the data may come from a protected relation or when
// it cannot tell (an unresolved name).
func resolveColumn(sc *scope, names []string, star bool) (*item, bool) {
	it, col, done := qualifiedItem(sc, names, star)
	if done {
		if it == nil {
			return nil, true
		}
		return it, it.carries
	}
	cands := columnCandidates(sc, col, star)
	if len(cands) == 0 {
		return nil, true
	}
	carries := false
	for _, it := range cands {
		carries = carries || it.carries
	}
	if len(cands) > 1 {
		return nil, carries // ambiguous or unknown: no single item to type it by
	}
	return cands[0], carries
}

// columnCandidates are the FROM items an unqualified column name (with
// star, an unqualified *) may refer to. PostgreSQL looks for the column
// level by level, innermost first, and takes the first level where an item
// has it; only a name no level has as a column can be a whole-row
// reference to an item of that name. An item whose columns the rewriter
// does not know (a function's, say) may or may not have it: it is a
// candidate, and the search goes on outwards, up to a level where an item
// certainly has it. Stopping at the unknown item let (SELECT ssn FROM
// jsonb_each(…) j) read the outer target's ssn unseen.
func columnCandidates(sc *scope, col string, star bool) []*item {
	var out []*item
	for s := sc; s != nil; s = s.parent {
		certain := false
		for _, it := range s.items {
			has, known := it.hasColumn(col)
			switch {
			case star || has:
				out = append(out, it)
				certain = true
			case !known || it.refname == col:
				out = append(out, it)
			}
		}
		if certain {
			return out
		}
	}
	return out
}

// callArgs is how many arguments PostgreSQL matches a call's overloads
// by: an ordered-set aggregate's WITHIN GROUP (ORDER BY …) ones count
// (red team round 35: mode() WITHIN GROUP (ORDER BY x) is mode(text)).
func callArgs(fc *pgFuncCall) int {
	if fc.AggWithinGroup {
		return len(fc.Args) + len(fc.AggOrder)
	}
	return len(fc.Args)
}

// argTypes are the types of a call's arguments as overloads are matched
// by ("" when unknown); false for a call that names its arguments or an
// ordered-set aggregate, whose arguments meet parameters in another order.
func (w *walker) argTypes(fc *pgFuncCall, sc *scope) ([]string, bool) {
	if fc.AggWithinGroup {
		return nil, false
	}
	args := make([]string, len(fc.Args))
	for i, a := range fc.Args {
		if a.GetNamedArgExpr() != nil {
			return nil, false
		}
		if t, flex := w.exprType(a, sc); t == "" && flex {
			args[i] = "unknown" // an untyped literal or parameter
		} else {
			args[i] = t
		}
	}
	return args, true
}

// funcCall checks the function against the allow-list and the leakproof
// rule. Aggregates and window functions run above every scan, after the
// filters, so their arguments are not quals.
func (w *walker) funcCall(fc *pgFuncCall, sc *scope, c ectx) error {
	schema, name, err := w.funcName(fc)
	if err != nil {
		return err
	}
	resolved, overloads := w.cat.lookupFunction(w.sess, schema, name)
	if err := w.checkFunction(resolved, name, schema == "" && len(overloads) == 0, fc); err != nil {
		return err
	}
	if schema == "" && len(overloads) > 0 {
		// Any schema further on the path may hold the overload PostgreSQL
		// picks: each must pass, and all count below.
		named := slices.ContainsFunc(fc.Args, func(a *pgNode) bool { return a.GetNamedArgExpr() != nil })
		args, _ := w.argTypes(fc, sc)
		others := w.cat.otherFunctionSchemas(w.sess, resolved, name, callArgs(fc), named, args)
		for _, other := range others {
			if err := w.checkFunction(other, name, false, fc); err != nil {
				return err
			}
			_, more := w.cat.lookupFunction(w.sess, other, name)
			overloads = append(slices.Clip(overloads), more...)
		}
		if len(others) == 0 {
			w.qualifyCall(fc, name, resolved)
		}
	}
	if jsonBuilders[name] && (resolved == "pg_catalog" || schema == "pg_catalog") {
		if err := w.checkJSONBuilder(name, fc, sc); err != nil {
			return err
		}
	}
	if name == "age" && len(fc.Args) == 1 {
		// age(xid) is the transaction counter's distance from xid: it moves
		// with every session's writes, as txid_current does (red team round
		// 13, F2). Only the date and time overloads are allowed.
		if t, _ := w.exprType(fc.Args[0], sc); t != "date" && t != "timestamp" && t != "timestamptz" {
			return denied("function age is allowed here only of a date or timestamp (age of a transaction id tells how many other transactions ran); cast its argument, e.g. age(x::timestamptz)")
		}
	}
	aggregate := fc.Over != nil || fc.AggStar || fc.AggDistinct || fc.AggWithinGroup ||
		len(fc.AggOrder) > 0 || fc.AggFilter != nil
	// With no overload taking this many arguments known, nothing is
	// assumed (a variadic one was once skipped and taken for leakproof).
	accepted := slices.ContainsFunc(overloads, func(f *Function) bool { return f.accepts(callArgs(fc)) })
	leakproof, volatile, immutable := accepted, !accepted, accepted
	for _, f := range overloads {
		if !f.accepts(callArgs(fc)) {
			continue
		}
		if f.Kind == KindAggregate || f.Kind == KindWindow {
			aggregate = true
		}
		leakproof = leakproof && f.Leakproof
		volatile = volatile || f.Volatility == Volatile
		immutable = immutable && f.Volatility == Immutable
	}
	if len(overloads) == 0 && knownAggregates[name] && resolved == "pg_catalog" {
		aggregate = true
	}
	if aggregate {
		above := ectx{}
		if err := w.args(fc.Args, sc, above); err != nil {
			return err
		}
		if err := w.exprs(fc.AggOrder, sc, above); err != nil {
			return err
		}
		if err := w.expr(fc.AggFilter, sc, above); err != nil {
			return err
		}
		if fc.Over != nil {
			return w.fields(fc.Over.ProtoReflect(), sc, above)
		}
		return nil
	}
	if !immutable && (!leakproof || c.leaky) && !w.readsRows(fc.Args...) {
		// Computed at run time, not planning (fold.go): to_date('x', 'YYYY')
		// fails for the rows that reach it.
		w.rowFreeValue(c, !leakproof)
	}
	if !leakproof {
		if c.qual && volatile {
			// Runs per row wherever the planner places it, even with no
			// column argument: its calls count rows the filter would hide.
			w.dangerous = true
		}
		w.leakyNode(&c)
	}
	if c.qual && !c.once {
		// Even a leakproof function costs what its arguments make it
		// cost, at the planner's price of one call (see plainOperand).
		w.leakyNode(&c)
	}
	return w.args(fc.Args, sc, c)
}

// args walks function arguments, where t.* is a whole-row reference.
func (w *walker) args(ns []*pgNode, sc *scope, c ectx) error {
	c.wholeRow = true
	return w.exprs(ns, sc, c)
}

// knownAggregates lets aggregates be recognised when the catalog does not
// list pg_catalog functions.
var knownAggregates = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true, "array_agg": true,
	"string_agg": true, "bool_and": true, "bool_or": true, "every": true, "json_agg": true,
	"jsonb_agg": true, "json_object_agg": true, "jsonb_object_agg": true, "stddev": true,
	"variance": true, "row_number": true, "rank": true, "dense_rank": true, "lag": true,
	"lead": true, "first_value": true, "last_value": true, "nth_value": true, "ntile": true,
	"percent_rank": true, "cume_dist": true,
}

func qualifiedName(parts []*pgNode) (schema, name string, err error) {
	strs := make([]string, 0, len(parts))
	for _, p := range parts {
		s := p.GetString_()
		if s == nil {
			return "", "", unsupported("unexpected %s in a name", nodeKind(p))
		}
		strs = append(strs, s.Sval)
	}
	switch len(strs) {
	case 1:
		return "", strs[0], nil
	case 2:
		return strs[0], strs[1], nil
	case 3:
		return strs[1], strs[2], nil
	}
	return "", "", unsupported("improper qualified name %s", strings.Join(strs, "."))
}

func (w *walker) checkFunction(schema, name string, unresolved bool, fc *pgFuncCall) error {
	qualified := schema + "." + name
	if unresolved {
		qualified = name // not in the catalog: name it as the user wrote it
	}
	if schema == mandateSchema {
		return denied("function %s is reserved for masks the proxy injects", qualified)
	}
	if name == "set_config" {
		// Refused under any schema: a setting changed by a function is
		// invisible to the proxy, which must know search_path (names
		// resolve by it), the role and its own mandate.* settings.
		return unsupported("function %s is not supported through mandate: change settings with SET, which the proxy tracks", qualified)
	}
	if reason, bad := deniedFunction(name); bad {
		return denied("function %s is not allowed: %s", qualified, reason)
	}
	key := qualified
	if schema == "pg_catalog" {
		key = name
	}
	if !w.opts.Functions[key] {
		return denied("function %s is not allowed: it is not on the function allow-list", qualified)
	}
	if name == "pg_notify" {
		// Under any schema: the channel must be known now to keep mandate's
		// own channels out of reach (see checkChannel).
		ch := ""
		w.valueDependent = true
		if len(fc.Args) > 0 {
			if s := fc.Args[0].GetAConst().GetSval(); s != nil {
				ch = s.Sval
			}
		}
		if ch == "" || reservedChannel(ch) {
			return denied("function %s is not allowed here: its channel must be a string constant not naming a mandate… channel", qualified)
		}
		if !w.opts.channelAllowed(ch) {
			return denied("function %s is not allowed here: channel %s is not among those mandate allows (notify_channels)", qualified, ch)
		}
	}
	if name == "current_setting" && schema == "pg_catalog" && len(fc.Args) > 0 {
		w.valueDependent = true
		if s := fc.Args[0].GetAConst().GetSval(); s != nil && strings.HasPrefix(strings.ToLower(s.Sval), "mandate.") {
			return denied("setting %s is handled by the proxy", s.Sval)
		}
	}
	return nil
}

// aExpr checks an operator expression: every operator it runs, including
// those PostgreSQL picks by name for IN, BETWEEN, IS DISTINCT FROM and
// NULLIF, must resolve to a built-in (checkOperator); leakproofness comes
// from the catalog's operator for the operand types it can infer.
func (w *walker) aExpr(e *pgAExpr, sc *scope, c ectx) error {
	schema, name, err := qualifiedName(e.Name)
	if err != nil {
		return err
	}
	w.rowSteps(operatorCalls(e), c)
	leakproof := false
	switch e.Kind {
	case pgAExprKindAEXPROP, pgAExprKindAEXPRLIKE, pgAExprKindAEXPRILIKE:
		var picked []string
		if l, r := e.Lexpr.GetRowExpr(), e.Rexpr.GetRowExpr(); e.Kind == pgAExprKindAEXPROP && l != nil && r != nil && len(l.Args) == len(r.Args) && len(l.Args) > 0 {
			// ROW(a, b) < ROW(c, d) applies the operator column by column
			// (make_row_comparison_op).
			for i := range l.Args {
				s, err := w.checkOperands(schema, name, l.Args[i], r.Args[i], sc)
				if err != nil {
					return err
				}
				picked = append(picked, s)
			}
		} else {
			s, err := w.checkOperands(schema, name, e.Lexpr, e.Rexpr, sc)
			if err != nil {
				return err
			}
			picked = append(picked, s)
		}
		like := e
		if e.Kind == pgAExprKindAEXPROP {
			like = nil
		}
		w.qualifyName(&e.Name, name, sameSchema(picked...), like)
		leakproof = e.Lexpr != nil && w.operatorLeakproof(schema, name, e.Lexpr, e.Rexpr, sc)
	case pgAExprKindAEXPRDISTINCT, pgAExprKindAEXPRNOTDISTINCT, pgAExprKindAEXPRNULLIF:
		if _, err := w.checkOperands(schema, name, e.Lexpr, e.Rexpr, sc); err != nil {
			return err
		}
		leakproof = w.operatorLeakproof(schema, "=", e.Lexpr, e.Rexpr, sc)
	case pgAExprKindAEXPRIN:
		// x IN (a, b) may become x = a OR x = b, x analysed once for each.
		w.repeatParams(e.Lexpr)
		items := e.Rexpr.GetList().GetItems()
		leakproof = len(items) < hashedArrayMin
		for _, v := range items {
			if _, err := w.checkOperands(schema, name, e.Lexpr, v, sc); err != nil {
				return err
			}
			leakproof = leakproof && w.operatorLeakproof(schema, name, e.Lexpr, v, sc)
		}
		if err := w.checkInCommonType(schema, name, e.Lexpr, items, sc); err != nil {
			return err
		}
	case pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN,
		pgAExprKindAEXPRBETWEENSYM, pgAExprKindAEXPRNOTBETWEENSYM:
		// The name is the keyword; PostgreSQL compares with >= and <= (NOT
		// BETWEEN: < and >), found by name like any operator. SYMMETRIC
		// compares the bounds with each other too.
		lower, upper := betweenOperators(e.Kind)
		bounds := e.Rexpr.GetList().GetItems()
		if len(bounds) != 2 {
			return unsupported("BETWEEN needs two bounds")
		}
		symmetric := e.Kind == pgAExprKindAEXPRBETWEENSYM || e.Kind == pgAExprKindAEXPRNOTBETWEENSYM
		// PostgreSQL analyses x once per comparison (SYMMETRIC: the bounds
		// twice too), and an undeclared parameter takes its type at the
		// first: in the next it is no longer untyped (red team round 45b:
		// $1 BETWEEN 1::int8 AND 'z'::text ran an owner's <=(int8, text)).
		w.repeatParams(e.Lexpr)
		if symmetric {
			w.repeatParams(bounds...)
		}
		var picked [2]string
		for k, op := range []string{lower, upper} {
			var schemas []string
			for _, b := range bounds {
				s, err := w.checkOperands("", op, e.Lexpr, b, sc)
				if err != nil {
					return err
				}
				schemas = append(schemas, s)
			}
			if symmetric {
				s, err := w.checkOperands("", op, bounds[0], bounds[1], sc)
				if err != nil {
					return err
				}
				schemas = append(schemas, s)
			}
			picked[k] = sameSchema(schemas...)
		}
		w.qualifyBetween(e, [2]string{lower, upper}, picked)
		leakproof = !symmetric &&
			w.operatorLeakproof(schema, lower, e.Lexpr, bounds[0], sc) &&
			w.operatorLeakproof(schema, upper, e.Lexpr, bounds[1], sc)
	case pgAExprKindAEXPROPANY, pgAExprKindAEXPROPALL, pgAExprKindAEXPRSIMILAR:
		// The operator is resolved by name, for the array's element type
		// (unknown for an untyped literal). x op ANY(array) applies it to
		// each element and adds no error of its own: it is as leakproof as
		// the operator on the elements' type, when that is known.
		lt, lflex := w.exprType(e.Lexpr, sc)
		et, eflex := "", false
		if at, aflex := w.exprType(e.Rexpr, sc); at == "" && aflex {
			eflex = true
		} else if el, ok := arrayElement(at); ok && !strings.Contains(at, ".") {
			et = el
		}
		exact, known := operandPair(lt, lflex, et, eflex)
		picked, err := w.checkOperator(schema, name, false, exact, known)
		if err != nil {
			return err
		}
		like := e
		if e.Kind != pgAExprKindAEXPRSIMILAR {
			like = nil
		}
		w.qualifyName(&e.Name, name, picked, like)
		if e.Kind != pgAExprKindAEXPRSIMILAR && lt != "" && w.smallArray(e.Rexpr) && !w.collatedColumn(e.Lexpr, sc) {
			if et := w.elementType(name, e.Rexpr, lt); et != "" {
				leakproof = w.cat.operatorLeakproof(schema, name, lt, et)
			}
		}
	default:
		return unsupported("operator expression kind %s is not supported", e.Kind)
	}
	if leakproof && c.qual && !c.once {
		switch two, one, pair := w.sizedOperands(e, name, sc); {
		case !w.plainOperands(e) || two || pair && w.conj == nil:
			leakproof = false
		case w.conj != nil:
			w.conj.sized = w.conj.sized || one
			w.conj.pair = w.conj.pair || pair
		}
	}
	if !leakproof {
		if !w.readsRows(e.Lexpr, e.Rexpr) && w.operatorMayBeStable(name, e.Lexpr, e.Rexpr, sc) {
			// Operands that read no column, yet not both untyped literals
			// (operatorLeakproof): PostgreSQL folds the operator only if its
			// function is immutable (timestamptz + interval is stable, and
			// may overflow per row).
			w.rowFreeValue(c, true)
		}
		w.leakyNode(&c)
	}
	if err := w.expr(e.Lexpr, sc, c); err != nil {
		return err
	}
	return w.expr(e.Rexpr, sc, c)
}

// operatorCalls is how many operator calls e makes per row: one per IN list
// item or array element (of ARRAY[…] or a literal, counted by its commas;
// a parameter array as hashedArrayMin), two for BETWEEN, one otherwise.
// An array literal of five elements is five comparisons, and charged by
// the planner half an operator each (red team round 22, M1).
func operatorCalls(e *pgAExpr) int {
	switch e.Kind {
	case pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN, pgAExprKindAEXPRBETWEENSYM, pgAExprKindAEXPRNOTBETWEENSYM:
		return 2
	case pgAExprKindAEXPROPANY, pgAExprKindAEXPROPALL:
		return arrayElements(e.Rexpr)
	}
	if l := e.Rexpr.GetList(); l != nil {
		return max(1, len(l.Items))
	}
	return 1
}

// arrayElements is how many elements an array operand holds, as far as
// the SQL tells: at least one.
func arrayElements(n *pgNode) int {
	switch x := n.GetNode().(type) {
	case *pgNodeAArrayExpr:
		return max(1, len(x.AArrayExpr.Elements))
	case *pgNodeTypeCast:
		return arrayElements(x.TypeCast.Arg)
	case *pgNodeAConst:
		return strings.Count(x.AConst.GetSval().GetSval(), ",") + 1
	case *pgNodeParamRef:
		return hashedArrayMin
	}
	return 1
}

// hashedArrayMin is the size from which PostgreSQL compares with a
// constant array through a hash table it builds when a row first needs it
// (MIN_ARRAY_SIZE_FOR_HASHED_SAOP): its build time, which the client sets
// with the array's size, tells whether a hidden row reached the
// comparison (red team round 10, K1). Below it, each row costs a few
// comparisons.
const hashedArrayMin = 9

// smallArray reports whether the array operand of ANY/ALL is known to
// hold fewer than hashedArrayMin elements: ARRAY[…] or a literal counted
// by its commas (at least its elements). A parameter's size is the
// client's, and a long one costs every row that reaches it.
func (w *walker) smallArray(arr *pgNode) bool {
	switch x := arr.GetNode().(type) {
	case *pgNodeAArrayExpr:
		return len(x.AArrayExpr.Elements) < hashedArrayMin
	case *pgNodeTypeCast:
		return w.smallArray(x.TypeCast.Arg)
	case *pgNodeAConst:
		if v := x.AConst.GetSval(); v != nil {
			w.valueDependent = true // '{1,2}' and a longer literal decide differently
			return strings.Count(v.Sval, ",")+1 < hashedArrayMin
		}
		return x.AConst.Isnull
	}
	return false
}

// elementType is the element type of an array operand of ANY/ALL when it
// is a constant or a parameter (read when PostgreSQL parses or binds the
// statement): an untyped literal ('{2,3}'), a parameter or ARRAY[…] of
// those take the other operand's type, lt (numbers as literalType says);
// a cast of one to a built-in array type has that type's. "" when it is
// not known.
func (w *walker) elementType(name string, arr *pgNode, lt string) string {
	constant := func(n *pgNode) bool {
		c := n.GetAConst()
		return n.GetParamRef() != nil || c != nil && (c.Isnull || c.GetSval() != nil)
	}
	switch x := arr.GetNode().(type) {
	case *pgNodeParamRef:
		// A declared type is the client's: its elements' type, if known.
		switch t := w.paramType(x.ParamRef.Number); {
		case t == "":
			return lt
		case strings.HasSuffix(t, "[]") && t != "?[]":
			return strings.TrimSuffix(t, "[]")
		}
	case *pgNodeAConst:
		if constant(arr) {
			return lt
		}
	case *pgNodeAArrayExpr:
		els := x.AArrayExpr.Elements
		lit := "" // the numbers' common type (ARRAY[1, 2.5] is numeric[])
		for _, el := range els {
			if el.GetAConst() == nil && (el.GetParamRef() == nil || w.paramType(el.GetParamRef().Number) != "") {
				return ""
			}
			if t, _ := w.exprType(el, nil); lit == "" || slices.Index(numberTypes, t) > slices.Index(numberTypes, lit) {
				lit = t
			}
		}
		if len(els) > 0 {
			return w.literalType(name, lit, lt, false)
		}
	case *pgNodeTypeCast:
		if t, array, ok := w.builtinType(x.TypeCast.TypeName); ok && array && constant(x.TypeCast.Arg) {
			return t
		}
	}
	return ""
}

// paramType is the type the client declared for $n, "" when none.
// countParams counts the references to each parameter: an undeclared
// parameter takes the type its first use implies, in the order PostgreSQL
// analyses the statement (FROM before the select list and WHERE), which
// the walk does not follow. One used once takes the type of that use; one
// used more often has no type the walk can know (red team round 18, P1).
// The count is of "$n" in the text, so a "$1" in a string or another
// statement counts too: more uses than there are, never fewer, and no
// walk of the tree on the cold path.
func (w *walker) countParams() {
	sql := w.lowerSQL
	for i := strings.IndexByte(sql, '$'); i >= 0; i = strings.IndexByte(sql, '$') {
		sql = sql[i+1:]
		j := 0
		for j < len(sql) && j < 10 && sql[j] >= '0' && sql[j] <= '9' {
			j++
		}
		if n, err := strconv.Atoi(sql[:j]); err == nil {
			if w.paramUses == nil {
				w.paramUses = map[int32]int{}
			}
			w.paramUses[int32(n)]++
		}
		sql = sql[j:]
	}
}

// repeatParams counts the parameters in ns as used once more: PostgreSQL
// analyses those nodes more than once, so the parameters' types are fixed
// by whichever analysis comes first (exprType then leaves them unknown).
func (w *walker) repeatParams(ns ...*pgNode) {
	var visit func(m protoreflect.Message)
	visit = func(m protoreflect.Message) {
		if p, ok := m.Interface().(*pgParamRef); ok {
			if w.paramUses == nil {
				w.paramUses = map[int32]int{}
			}
			w.paramUses[p.Number] += 2
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Message() == nil || fd.IsMap():
			case fd.IsList():
				for i := range v.List().Len() {
					visit(v.List().Get(i).Message())
				}
			default:
				visit(v.Message())
			}
			return true
		})
	}
	for _, n := range ns {
		if n != nil {
			visit(n.ProtoReflect())
		}
	}
}

func (w *walker) paramType(n int32) string {
	if n < 1 || int(n) > len(w.sess.ParamTypes) {
		return ""
	}
	return w.sess.ParamTypes[n-1]
}

// declaredType is a PREPARE argument type as Session.ParamTypes holds it.
func (w *walker) declaredType(tn *pgTypeName) string {
	t, arr := w.namedType(tn)
	switch {
	case t == "":
		return "?"
	case arr:
		return t + "[]"
	}
	return t
}

// namedType is baseType of a type the statement names, "" when the name
// is unqualified and pg_catalog is not first on the session's path: the
// path may find another schema's type of that name first (red team round
// 38: a public.uuid range type with a cast to json passed for uuid).
func (w *walker) namedType(tn *pgTypeName) (string, bool) {
	if tn != nil && (len(tn.Names) == 1 || w.keywordOnlyIn17(tn)) {
		if path := w.sess.functionPath(); len(path) == 0 || path[0] != "pg_catalog" {
			return "", false
		}
		if !w.cat.hasBuiltinType(tn.Names[len(tn.Names)-1].GetString_().GetSval()) {
			return "", false // another schema's, further on the path
		}
	}
	return baseType(tn)
}

// operatorMayBeStable reports whether the operator name applied to l and
// r may have a function that is not immutable, so that PostgreSQL computes
// it at run time even of constants. The built-in ones that are not
// immutable involve timestamptz (comparisons with date and timestamp,
// ± interval), text || anynonarray and text @@ text; with an operand type
// it cannot infer, the rewriter assumes the worst.
func (w *walker) operatorMayBeStable(name string, l, r *pgNode, sc *scope) bool {
	lt, lflex := w.exprType(l, sc)
	rt, rflex := w.exprType(r, sc)
	untyped := func(n *pgNode, t string, flex bool) bool { return flex && t == "" && n.GetParamRef() == nil }
	switch {
	case l == nil:
		lt = rt // prefix operator
	case untyped(l, lt, lflex) && untyped(r, rt, rflex):
		lt, rt = "text", "text" // as PostgreSQL resolves two unknowns
	case untyped(l, lt, lflex):
		lt = rt
	case untyped(r, rt, rflex):
		rt = lt
	}
	switch name {
	case "@@":
		return true // text @@ text is ts_match_tt, stable
	case "||":
		return textual(lt) != "text" || textual(rt) != "text" // textcat is immutable, anytextcat not
	}
	return lt == "" || rt == "" || lt == "timestamptz" || rt == "timestamptz"
}

// checkOperands checks the operator name applied to l and r (l nil for a
// prefix operator), with the operand types it can infer (operandTypes).
func (w *walker) checkOperands(schema, name string, l, r *pgNode, sc *scope) (string, error) {
	exact, known := w.operandTypes(l, r, sc)
	return w.checkOperator(schema, name, l == nil, exact, known)
}

// checkInCommonType checks x IN (a, b, …) as PostgreSQL may run it: with
// two items or more it becomes x = ANY(ARRAY[a, b, …]), its operator
// resolved for x's type and the common type of x and the items
// (transformAExprIn), which is one of their types, text if none has one
// (red team round 44a: id IN (1::int4, 2::int4) ran s2.=(int8, int8) with
// s2 first on the path, where id = 1::int4 is int84eq).
func (w *walker) checkInCommonType(schema, name string, x *pgNode, items []*pgNode, sc *scope) error {
	if len(items) < 2 {
		return nil
	}
	lt, lflex := w.exprType(x, sc)
	var types []string
	if lt != "" {
		types = append(types, lt)
	}
	uninferred := lt == "" && !lflex
	for _, v := range items {
		switch t, flex := w.exprType(v, sc); {
		case t == "" && flex:
		case t == "":
			uninferred = true
		case !slices.Contains(types, t):
			types = append(types, t)
		}
	}
	if uninferred {
		types = append(types, "") // every operator of the name may be the pick
	} else if len(types) == 0 {
		types = append(types, "text")
	}
	for _, t := range types {
		exact, known := operandPair(lt, lflex, t, false)
		if _, err := w.checkOperator(schema, name, false, exact, known); err != nil {
			return err
		}
	}
	return nil
}

// operandTypes are the types PostgreSQL resolves an operator on l and r
// with (l nil for a prefix operator; see Catalog.operatorCandidates).
func (w *walker) operandTypes(l, r *pgNode, sc *scope) (exact, known [2]string) {
	rt, rflex := w.exprType(r, sc)
	if l == nil {
		exact, known = operandPair("", true, rt, rflex)
		return [2]string{"", exact[1]}, [2]string{"unknown", known[1]}
	}
	lt, lflex := w.exprType(l, sc)
	return operandPair(lt, lflex, rt, rflex)
}

// operandPair makes operandTypes of the operands' exprType: for the exact
// match an untyped literal, or a parameter of no declared type used once,
// takes the other operand's type, and two of them are text, as PostgreSQL
// resolves them (binary_oper_exact, then the string category's preferred
// type); known leaves them unknown.
func operandPair(lt string, lflex bool, rt string, rflex bool) (exact, known [2]string) {
	exact, known = [2]string{lt, rt}, [2]string{lt, rt}
	lu, ru := lflex && lt == "", rflex && rt == ""
	switch {
	case lu && ru:
		exact = [2]string{"text", "text"}
	case lu:
		exact[0] = rt
	case ru:
		exact[1] = lt
	}
	if lu {
		known[0] = "unknown"
	}
	if ru {
		known[1] = "unknown"
	}
	return exact, known
}

// checkOperator allows an operator only when every operator PostgreSQL may
// pick for it is a built-in (schema pg_catalog) or, outside schema mandate,
// listed on the function allow-list as "schema.name". A user-defined
// operator runs its function with the upstream role's rights, so it could
// read any relation unfiltered; an operator name no built-in has is refused
// too, as whatever answers to it is not built in. It returns the schema of
// the pick when only one schema's operators may be it (qualify.go).
func (w *walker) checkOperator(schema, name string, prefix bool, exact, known [2]string) (string, error) {
	written := name
	if schema != "" {
		written = "OPERATOR(" + schema + "." + name + ")"
	}
	schemas := []string{schema}
	if schema == "" || schema == "pg_catalog" {
		schemas = w.cat.operatorSchemas(w.sess, schema, name, prefix, exact, known)
	}
	if len(schemas) == 0 {
		return "", denied("operator %s is not allowed: only built-in operators (schema pg_catalog) may be used, and no built-in operator has that name", written)
	}
	for _, s := range schemas {
		if s == "pg_catalog" {
			continue
		}
		if s == mandateSchema || !w.opts.Functions[s+"."+name] {
			return "", denied("operator %s is not allowed: only built-in operators (schema pg_catalog) may be used, and it may resolve to %s.%s", written, s, name)
		}
	}
	if len(schemas) > 1 {
		return "", nil
	}
	return schemas[0], nil
}

func (w *walker) subLink(s *pgSubLink, sc *scope, c ectx) error {
	w.sublinks = true
	inner := c
	if len(s.OperName) > 0 || s.SubLinkType == pgSubLinkTypeANY {
		// x IN (SELECT …) has no operator name in the tree: PostgreSQL
		// looks up "=" for it, a user-defined one included.
		schema, name, err := "", "=", error(nil)
		if len(s.OperName) > 0 {
			schema, name, err = qualifiedName(s.OperName)
		}
		if err != nil {
			return err
		}
		lt, lflex := w.exprType(s.Testexpr, sc)
		exact, known := operandPair(lt, lflex, sublinkColumnType(w, s), false)
		picked, err := w.checkOperator(schema, name, false, exact, known)
		if err != nil {
			return err
		}
		// x IN (SELECT …) becomes x OPERATOR(s.=) ANY (SELECT …).
		w.qualifyName(&s.OperName, name, picked, nil)
		// x IN (SELECT …): the subquery's column type is not inferred.
		inner.leaky = true
	}
	if err := w.expr(s.Testexpr, sc, inner); err != nil {
		return err
	}
	sel := s.Subselect.GetSelectStmt()
	if sel == nil {
		return unsupported("unexpected %s in subquery", nodeKind(s.Subselect))
	}
	m := w.mark()
	if err := w.selectStmt(sel, sc, true, false); err != nil {
		return err
	}
	// The subquery's value flows into a leaky qual: if it can carry protected
	// rows, the qual may see them before the filter after pull-up.
	if c.qual && (c.leaky || inner.leaky) && w.since(m) {
		w.dangerous = true
	}
	// An initplan or subplan runs when a row first needs it: an error in
	// it (a scalar sublink's second row, 21000, say), or in the leaky
	// expression it feeds, tells that a row reached it (fold.go), whatever
	// it reads. So does its run time, which the client controls (a slow
	// query in it, a statement_timeout that turns time into an error): in a
	// per-row qual, any sublink makes the statement dangerous.
	c.leaky = c.leaky || inner.leaky
	w.rowFreeValue(c, true)
	return nil
}

// sublinkColumnType is the type of a one-column subquery's column when it
// shows without a scope (a constant, a cast, a parameter); "" when unknown,
// and then any operator of the name may be PostgreSQL's pick.
func sublinkColumnType(w *walker, s *pgSubLink) string {
	sel := s.Subselect.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || sel.Op != pgSetOperationSETOPNONE {
		return ""
	}
	v := sel.TargetList[0].GetResTarget().GetVal()
	if v.GetAConst() == nil && v.GetTypeCast() == nil && v.GetParamRef() == nil {
		return "" // a column or expression needs the subquery's scope
	}
	t, _ := w.exprType(v, nil) // a constant keeps its own type there
	return t
}

// longConstant fences a statement with a long string, bit-string or number
// constant in a per-row qual: a leakproof comparison with one (text_lt
// under a collation copies both strings, say) costs in proportion to its
// length while the planner charges one operator, so gated by a leakproof
// test it would run ahead of the filter and time a hidden row, as a
// constructor would (see uncharged). TemplateKey keeps such statements
// out of templates, so the length decides nothing for shorter ones.
func (w *walker) longConstant(k *pgAConst, c ectx) {
	if !c.qual || c.once {
		return
	}
	if constantLength(k) > longLiteral {
		w.dangerous = true
	}
}

// constantLength is the length of a literal as written: a string's, a bit
// string's or a number's (numeric_eq walks a 16,000-digit one).
func constantLength(k *pgAConst) int {
	return max(len(k.GetSval().GetSval()), len(k.GetBsval().GetBsval()), len(k.GetFval().GetFval()))
}

// qual walks a per-row qual (WHERE, JOIN ON, HAVING, a write's WHERE or
// MERGE condition). A column read anywhere in it under a leaky node fences
// the statement, whichever relation the column belongs to. PostgreSQL
// moves quals between relations in more ways than the walk can follow:
// a conjunct that reads a protected column is evaluated at its scan with
// the join's values as parameters (red team round 13: "t.x IS NULL OR
// v.b::domain IS NULL"), an equivalence class carries "w.b = <expr>" to
// t's scan as "t.a = <expr>" (round 16), a derived table's or USING join's
// output is pulled up beside a protected column (rounds 14 and 15). So
// the walk does not ask whose columns a leaky node reads: unfenced per-row
// quals are leakproof comparisons of plain operands, joined by AND, OR and
// NOT, and nothing else.
func (w *walker) qual(n *pgNode, sc *scope) error {
	return w.conjuncts(n, sc, false)
}

// conjuncts walks a qual one top-level conjunct at a time (see qual); with
// push, a leakproof one a fence may copy into a derived table is noted
// (pushdown.go).
func (w *walker) conjuncts(n *pgNode, sc *scope, push bool) error {
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pgBoolExprTypeANDEXPR {
		for _, a := range b.Args {
			if err := w.conjuncts(a, sc, push); err != nil {
				return err
			}
		}
		return nil
	}
	found, err := w.walkConjunct(sc, func() error { return w.expr(n, sc, ectx{qual: true}) })
	switch {
	case err != nil:
		return err
	case found.leaky, found.sized && (len(found.items) > 1 || found.outer), found.pair && !joinComparison(n, sc):
		// A comparison that costs what a column's value makes it cost,
		// in a conjunct PostgreSQL may evaluate in another relation's
		// scan (with the column as a parameter): a 20 MB value the
		// client wrote elsewhere timed hidden rows through "t.id IS
		// NULL OR x.body ~<~ 'abc'" (red team round 19, R1).
		w.dangerous = true
	case push:
		w.notePushable(n, sc)
	}
	return nil
}

// walkConjunct runs walk, a walk of an expression at level's scope, and
// returns what it found.
func (w *walker) walkConjunct(level *scope, walk func() error) (conjunct, error) {
	outer := w.conj
	w.conj = &conjunct{level: level}
	err := walk()
	found := *w.conj
	w.conj = outer
	return found, err
}

// conjunct collects what the walk of a qual or pullable list found.
type conjunct struct {
	level *scope
	leaky bool // a column read under a node that may raise an error or cost what the client chooses
	// sized: a leakproof comparison of a column costs in proportion to its
	// value (see sizedComparison).
	sized bool
	pair  bool    // = or <> of two text or bytea columns (see comparisonCost)
	items []*item // the items of level whose columns it reads
	outer bool    // it reads a column of another level, or one it cannot resolve
}

// read notes a column of it read in a per-row qual.
func (c *conjunct) read(it *item) {
	switch {
	case it == nil || c.level == nil || !slices.Contains(c.level.items, it):
		c.outer = true
	case !slices.Contains(c.items, it):
		c.items = append(c.items, it)
	}
}

// pullable walks what PostgreSQL may pull up into a parent's quals when
// feeds: a level's output list, a VALUES list. There a column read under a
// leaky node fences: pulled up, the expression lands in whatever parent
// conjunct names its output, next to a protected column the walk of that
// conjunct cannot connect it to (red team rounds 14 and 15: s.x from
// "v.b::domain AS x", or from a one-row LATERAL VALUES, in "t.m IS NULL OR
// s.x IS NULL"; see walker.qual).
func (w *walker) pullable(feeds bool, walk func() error) error {
	if !feeds {
		return walk()
	}
	found, err := w.walkConjunct(nil, walk)
	if found.leaky || found.sized || found.pair {
		w.dangerous = true
	}
	return err
}

// checkMergedColumns fences a USING or NATURAL join whose merged columns
// may differ in type between its sides, whose = is not leakproof or may
// fail on a collation, and notes the merged columns as read in a qual (a
// masked one fences, fenceMaskedReads). Differing types: PostgreSQL
// converts one side
// (numeric to float8, say), a conversion that can fail, and a conjunct
// naming the merged column beside a protected one may run it in the
// protected scan, ahead of the filter (red team round 15, Q2: 1e309
// overflowed only for hidden rows). Whether the join itself reads
// protected data does not matter; fenced() asks whether the statement
// does. The sides' items are sc.items[first:mid] and [mid:].
//
// The = PostgreSQL builds for each merged column is looked up by name like
// any other (red team round 45a: USING (id) over int8 and numeric ran an
// owner's =(int8, numeric)); for NATURAL, with the common names of both
// sides when both are known, else with operand types unknown.
func (w *walker) checkMergedColumns(j *pgJoinExpr, sc *scope, first, mid int) error {
	left, right := sc.outside(), sc.outside()
	left.items, right.items = sc.items[first:mid], sc.items[mid:]
	names := make([]string, 0, len(j.UsingClause))
	for _, u := range j.UsingClause {
		names = append(names, u.GetString_().GetSval())
	}
	if j.IsNatural {
		w.dangerous = true // fenced: the merged names' reads are not noted
		l, r := levelColumns(left), levelColumns(right)
		if !l.known || !r.known {
			_, err := w.checkOperator("", "=", false, [2]string{}, [2]string{})
			return err
		}
		names = names[:0]
		for _, n := range l.names {
			if r.has(n) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, name := range names {
		lt, _ := w.exprType(columnRef(name), left)
		rt, _ := w.exprType(columnRef(name), right)
		if _, err := w.checkOperator("", "=", false, [2]string{lt, rt}, [2]string{lt, rt}); err != nil {
			return err
		}
		if j.IsNatural {
			continue
		}
		// USING (c) is the qual l.c = r.c: it reads both sides' c (a masked
		// one is its mask there) and runs = on them (red team round 30:
		// USING (balance) put dana's round mask in the protected scan).
		for _, side := range []*scope{left, right} {
			it, carries := resolveColumn(side, []string{name}, false)
			w.noteQualRead(it, []string{name}, false, carries)
		}
		if lt == "" || lt != rt || !w.cat.operatorLeakproof("", "=", lt, rt) ||
			w.collatedColumn(columnRef(name), left) || w.collatedColumn(columnRef(name), right) {
			w.dangerous = true
		}
	}
	return nil
}

// gate marks a CASE or COALESCE in a per-row qual as leaky: what its
// branches (COALESCE: its later arguments) cost tells whether a row passed
// its test, and the planner charges a branch no more than its operators
// (red team rounds 11 and 12: a leakproof test, then a constant that
// expands to megabytes).
func (w *walker) gate(c *ectx) {
	if c.qual && !c.once {
		w.leakyNode(c)
	}
}

// plainOperands reports whether the operands of e are plain (see
// plainOperand); IN lists and BETWEEN bounds item by item.
func (w *walker) plainOperands(e *pgAExpr) bool {
	if e.Lexpr != nil && !w.plainOperand(e.Lexpr) {
		return false
	}
	if l := e.Rexpr.GetList(); l != nil {
		for _, v := range l.Items {
			if !w.plainOperand(v) {
				return false
			}
		}
		return true
	}
	return w.plainOperand(e.Rexpr)
}

// sizedOperands reports, over the comparisons e makes (IN lists, BETWEEN
// bounds and ARRAY[…] elements pair by pair with the left operand), whether
// one costs in proportion to column values (see comparisonCost): between
// two columns (two) or a column and a constant (one); and whether one is
// = or <> of two text or bytea columns (pair).
func (w *walker) sizedOperands(e *pgAExpr, name string, sc *scope) (two, one, pair bool) {
	right := []*pgNode{e.Rexpr}
	if l := e.Rexpr.GetList(); l != nil {
		right = l.Items
	} else if a := e.Rexpr.GetAArrayExpr(); a != nil {
		right = a.Elements
	}
	for _, r := range right {
		if e.Lexpr == nil {
			continue
		}
		columns := w.readsRows(e.Lexpr) && w.readsRows(r)
		switch w.comparisonCost(name, e.Lexpr, r, sc) {
		case costSized:
			two, one = two || columns, one || !columns
		case costLengths:
			pair = pair || columns
		}
	}
	return two, one, pair
}

// cmpCost is how a leakproof comparison's cost grows with its operands.
type cmpCost uint8

const (
	costFixed   cmpCost = iota // the same on every row
	costLengths                // = or <> of text or bytea: lengths first, contents when they are equal
	costSized                  // in proportion to the operands' values
)

// comparisonCost classifies comparing l with r. A leakproof operator reads
// its operands whole unless both have fixed-width types, and a value the
// client wrote elsewhere (20 MB of text TOAST compresses to a few KB) then
// costs what the client chooses: compared with a hidden row's column from a
// LATERAL subquery, "t.merchant ~<~ x.body" ran in the protected scan
// ahead of the filter at 2.7 ms a call and timed each hidden row (red team
// round 18, T1); so did the value compared with a constant in a conjunct
// that read the hidden row (round 19, R1), and = of the value with itself,
// whose lengths are equal (round 20, S1). Two sized columns fence; one
// beside a constant fences when its conjunct reads another relation too;
// = or <> of two text columns fences unless it is a whole conjunct
// comparing two relations' columns, which costs at most the hidden side's
// length (walker.conjuncts).
func (w *walker) comparisonCost(name string, l, r *pgNode, sc *scope) cmpCost {
	if !w.readsRows(l) && !w.readsRows(r) {
		return costFixed
	}
	lt, lflex := w.exprType(l, sc)
	rt, rflex := w.exprType(r, sc)
	if lflex {
		lt = rt // an untyped literal or parameter takes the other side's type
	}
	if rflex {
		rt = lt
	}
	lengthFirst := func(t string) bool { return textual(t) == "text" || t == "bytea" }
	switch {
	case fixedWidth[lt] && fixedWidth[rt]:
		return costFixed
	case (name == "=" || name == "<>") && lengthFirst(lt) && lengthFirst(rt):
		if !w.readsRows(l) || !w.readsRows(r) {
			return costFixed // contents compared only when as long as a constant
		}
		return costLengths
	}
	return costSized
}

// columnNames are the names of a column reference without a star, or nil.
func columnNames(cr *pgColumnRef) []string {
	var names []string
	for _, f := range cr.GetFields() {
		s := f.GetString_()
		if s == nil {
			return nil
		}
		names = append(names, s.Sval)
	}
	return names
}

// joinComparison reports whether a conjunct is exactly a comparison of two
// columns of two different FROM items.
func joinComparison(n *pgNode, sc *scope) bool {
	e := n.GetAExpr()
	if e == nil || e.Kind != pgAExprKindAEXPROP && e.Kind != pgAExprKindAEXPRDISTINCT && e.Kind != pgAExprKindAEXPRNOTDISTINCT {
		return false
	}
	item := func(n *pgNode) *item {
		names := columnNames(n.GetColumnRef())
		if names == nil {
			return nil
		}
		it, _ := resolveColumn(sc, names, false)
		return it
	}
	l, r := item(e.Lexpr), item(e.Rexpr)
	return l != nil && r != nil && l != r
}

// fixedWidth are built-in types whose values all have one size.
var fixedWidth = map[string]bool{
	"int2": true, "int4": true, "int8": true, "float4": true, "float8": true, "bool": true,
	"oid": true, "date": true, "time": true, "time without time zone": true, "timetz": true,
	"time with time zone": true, "timestamp": true, "timestamptz": true, "interval": true,
	"uuid": true, "money": true, "name": true, "macaddr": true, "macaddr8": true, "pg_lsn": true,
	"xid": true, "xid8": true, "cid": true, "tid": true, "regclass": true, "regtype": true,
	"regproc": true, "regprocedure": true, "regoper": true, "regoperator": true,
	"regnamespace": true, "regrole": true, "regconfig": true, "regdictionary": true,
}

// plainOperand reports whether n may be the operand of a leakproof
// operator in an unfenced per-row qual: a column, a parameter, a constant
// of at most longLiteral bytes, a cast of one to a type without a
// modifier, arithmetic of those, or a short ARRAY[…] of them. Anything
// else (a function call, CASE, 'x'::char(10485760)) can cost, per row,
// what the client chooses while the planner charges one operator, so the
// qual would run ahead of the filter and time a hidden row (red team
// rounds 11 and 12). Parameters are bound after the decision: a long one
// is a known limit (docs/security.md).
func (w *walker) plainOperand(n *pgNode) bool {
	switch x := n.GetNode().(type) {
	case *pgNodeColumnRef, *pgNodeParamRef:
		return true
	case *pgNodeAConst:
		return constantLength(x.AConst) <= longLiteral
	case *pgNodeTypeCast:
		return len(x.TypeCast.GetTypeName().GetTypmods()) == 0 && w.plainOperand(x.TypeCast.Arg)
	case *pgNodeAExpr:
		e := x.AExpr
		return e.Kind == pgAExprKindAEXPROP && (e.Lexpr == nil || w.plainOperand(e.Lexpr)) && w.plainOperand(e.Rexpr)
	case *pgNodeAArrayExpr:
		els := x.AArrayExpr.Elements
		if len(els) >= hashedArrayMin {
			return false
		}
		for _, e := range els {
			if !w.plainOperand(e) {
				return false
			}
		}
		return true
	}
	return false
}

// rowStepLimit is how many steps (see rowSteps) the per-row quals of a
// statement may hold before it is fenced.
const rowStepLimit = 16

// uncharged counts the steps of a per-row qual that PostgreSQL's cost
// model does not charge for (cost_qual_eval_walker counts function and
// operator calls only): a boolean's operands, IS [NOT] NULL, IS TRUE and
// the like, CASE branches, COALESCE's arguments. The planner orders quals
// by cost, so a qual of many such steps looks as cheap as its one
// operator and may run before the filter; gated by a leakproof CASE, its
// run time tells whether a hidden row passed the gate (red team round 11,
// L1).
func (w *walker) uncharged(n *pgNode, c ectx) {
	switch x := n.Node.(type) {
	case *pgNodeBoolExpr:
		w.rowSteps(len(x.BoolExpr.Args), c)
	case *pgNodeCoalesceExpr:
		w.rowSteps(len(x.CoalesceExpr.Args), c)
	default:
		w.rowSteps(1, c)
	}
}

// rowSteps counts n steps of a per-row qual: uncharged ones (see
// uncharged) and comparisons. Past rowStepLimit the statement is fenced.
// Each comparison is charged one operator, as the filter is, and quals of
// equal cost run in the order PostgreSQL lists them, the filter last: a
// leakproof test of a hidden row followed by thousands of comparisons that
// are always true made the row cost thousands of operations when the test
// passed, a timing oracle for every persona (red team round 21, K1).
func (w *walker) rowSteps(n int, c ectx) {
	if !c.qual || c.once {
		return
	}
	w.steps += n
	if w.steps > rowStepLimit {
		w.dangerous = true
	}
}

// operatorLeakproof infers operand types (columns of catalog relations,
// typed constants; untyped literals and parameters take the other side's
// type, as PostgreSQL's operator resolution does) and asks the catalog.
func (w *walker) operatorLeakproof(schema, name string, l, r *pgNode, sc *scope) bool {
	if w.collatedColumn(l, sc) || w.collatedColumn(r, sc) {
		return false
	}
	lt, lflex := w.exprType(l, sc)
	rt, rflex := w.exprType(r, sc)
	switch {
	case lflex && rflex:
		// Constants only: folded at plan time if immutable.
		return !w.operatorMayBeStable(name, l, r, sc)
	case lflex:
		lt = w.literalType(name, lt, rt, true)
	case rflex:
		rt = w.literalType(name, rt, lt, false)
	}
	return w.cat.operatorLeakproof(schema, name, lt, rt)
}

// collatedColumn reports whether n is a column with a non-default collation
// (Column.Collated), or a cast of one, which keeps its collation. Such a
// comparison is leaky however leakproof its function: text_starts_with
// raised 0A000 under a nondeterministic collation, and texteq 42P22 beside
// 'x'::name (collation "C"), on every row it saw, ahead of the filter: an
// error oracle that named a hidden customer (red team round 24, F1).
func (w *walker) collatedColumn(n *pgNode, sc *scope) bool {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	col := catalogColumn(n.GetColumnRef(), sc)
	return col != nil && col.Collated
}

// catalogColumn is the catalog column a column reference names, nil if it
// names none (or not one only).
func catalogColumn(cr *pgColumnRef, sc *scope) *Column {
	names := columnNames(cr)
	if names == nil {
		return nil
	}
	it, _ := resolveColumn(sc, names, false)
	if it == nil || it.table == nil {
		return nil
	}
	return it.tableColumn(names[len(names)-1])
}

// literalType is the type PostgreSQL's operator resolution gives a literal
// of type lit ("" untyped) beside an operand of type other. An untyped
// literal or parameter takes other's type. A number keeps its own where an
// operator takes both types as they are (int8 = int4 is int84eq); else it
// becomes other's type where a constant of its type casts to that
// implicitly, folded while planning; else PostgreSQL casts the other side,
// per row: "t.id = 14.5" is numeric_eq(t.id::numeric, 14.5), not int8eq,
// and neither function is leakproof (red team round 23: a 16,000-digit
// literal, walked digit by digit when a hidden id matched, timed the row).
func (w *walker) literalType(name, lit, other string, litLeft bool) string {
	if lit == "" {
		return other
	}
	l, r := lit, other
	if !litLeft {
		l, r = other, lit
	}
	if w.cat.hasOperator(name, l, r) || !slices.Contains(literalCasts[lit], other) {
		return lit
	}
	return other
}

// literalCasts are the implicit casts (pg_cast, castcontext 'i') from the
// types PostgreSQL gives numeric literals: int4, int8 for a larger integer,
// numeric for any other number.
var literalCasts = map[string][]string{
	"int4":    append([]string{"int8", "numeric", "float4", "float8"}, oidTypes...),
	"int8":    append([]string{"numeric", "float4", "float8"}, oidTypes...),
	"numeric": {"float4", "float8"},
}

var oidTypes = []string{"oid", "regproc", "regprocedure", "regoper", "regoperator", "regclass",
	"regtype", "regconfig", "regdictionary", "regnamespace", "regrole", "regcollation"}

// numberTypes are the types of numeric literals, narrowest first.
var numberTypes = []string{"int4", "int8", "numeric"}

// numberType is the type of a numeric literal pg_query does not hold as an
// int4, as PostgreSQL's make_const types it: int4 for an integer that fits
// it (-2147483648, which the scanner saw as 2147483648), int8 for one that
// fits that, numeric for any other. Integers may be written in hex, octal
// or binary and with underscores (PostgreSQL 16's forms, which older
// upstreams refuse; red team round 46a: 0x7FFFFFFFFF, int8 upstream, was
// taken for numeric and an owner's %(int8, int4) ran). Template keys see
// the digits apart from the sign, so the two numbers whose sign decides
// their type have template kinds of their own (numberKind).
func numberType(s string) string {
	digits, negative := strings.CutPrefix(s, "-")
	base := 10
	if len(digits) > 2 && digits[0] == '0' {
		switch digits[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			digits = digits[2:]
		}
	}
	digits = strings.ReplaceAll(digits, "_", "")
	if negative {
		digits = "-" + digits
	}
	if v, err := strconv.ParseInt(digits, base, 64); err == nil {
		if v == int64(int32(v)) {
			return "int4"
		}
		return "int8"
	}
	return "numeric"
}

// exprType returns a node's base type when it is easy to know, and whether
// it is a constant whose type adapts to the other operand.
func (w *walker) exprType(n *pgNode, sc *scope) (string, bool) {
	switch x := n.GetNode().(type) {
	case *pgNodeAConst:
		switch x.AConst.Val.(type) {
		case *pgAConstIval:
			return "int4", true
		case *pgAConstFval:
			return numberType(x.AConst.GetFval().GetFval()), true
		case *pgAConstBoolval:
			return "bool", true
		case *pgAConstBsval:
			return "bit", false // B'101' is typed bit, not unknown
		}
		return "", true
	case *pgNodeParamRef:
		switch t := w.paramType(x.ParamRef.Number); {
		case t == "" && w.paramUses[x.ParamRef.Number] > 1:
			return "", false // typed by whichever use PostgreSQL analyses first
		case t == "":
			return "", true // takes the other operand's type
		case t == "?" || t == "?[]":
			return "", false
		case strings.HasSuffix(t, "[]"):
			return arrayType(strings.TrimSuffix(t, "[]")), false
		default:
			return t, false
		}
	case *pgNodeTypeCast:
		t, arr := w.namedType(x.TypeCast.TypeName)
		if arr {
			return arrayType(t), false
		}
		return t, false
	case *pgNodeColumnRef:
		col := catalogColumn(x.ColumnRef, sc)
		switch {
		case col == nil:
			return "", false
		case col.array:
			return arrayType(col.base), false
		}
		return col.base, false
	case *pgNodeAArrayExpr:
		// ARRAY[…] of one known type, or of untyped literals only (text[]).
		el := ""
		for _, e := range x.AArrayExpr.Elements {
			switch t, flex := w.exprType(e, sc); {
			case t == "" && flex && e.GetParamRef() == nil:
				continue
			case t == "" || el != "" && t != el:
				return "", false
			default:
				el = t
			}
		}
		switch {
		case el == "" && len(x.AArrayExpr.Elements) > 0:
			el = "text"
		case strings.HasPrefix(el, "_"):
			return el, false // ARRAY[ARRAY[1]] is int4[] too
		}
		return arrayType(el), false
	case *pgNodeAIndirection:
		// a[i] of an array is its element type (int2vector's int2,
		// oidvector's oid), a[i:j] its array type: psql's \d compares
		// attnum = prattrs[s]. Field selection and other types'
		// subscripting (jsonb, hstore) are not worked out.
		slice := false
		for _, ind := range x.AIndirection.Indirection {
			ai := ind.GetAIndices()
			if ai == nil {
				return "", false
			}
			slice = slice || ai.IsSlice
		}
		t, _ := w.exprType(x.AIndirection.Arg, sc)
		el, ok := arrayElement(t)
		switch {
		case !ok || strings.Contains(t, "."):
			return "", false
		case slice:
			return arrayType(el), false
		}
		return el, false
	case *pgNodeBoolExpr, *pgNodeNullTest, *pgNodeBooleanTest:
		return "bool", false
	case *pgNodeSqlvalueFunction:
		return sqlValueTypes[x.SqlvalueFunction.Op], false
	case *pgNodeFuncCall, *pgNodeAExpr, *pgNodeCoalesceExpr:
		if t, ok := w.typed[n]; ok {
			return t, false
		}
		if w.typing >= maxTyping {
			return "", false
		}
		w.typing++
		var t string
		switch {
		case n.GetFuncCall() != nil:
			t = w.funcType(n.GetFuncCall(), sc, false)
		case n.GetAExpr() != nil:
			t = w.operatorType(n.GetAExpr(), sc)
		default:
			t = w.commonType(n.GetCoalesceExpr().Args, sc)
		}
		w.typing--
		if w.typed == nil {
			w.typed = map[*pgNode]string{}
		}
		w.typed[n] = t
		return t, false
	}
	return "", false
}

// arrayType names the array type of a built-in element type as pg_type
// does ("_int4"); "" for another schema's or an unknown element type.
func arrayType(el string) string {
	if el == "" || strings.Contains(el, ".") {
		return ""
	}
	return "_" + el
}

// maxTyping bounds how deep exprType looks into calls and operators.
const maxTyping = 8

// sqlValueTypes are the types of CURRENT_DATE and its kin.
var sqlValueTypes = map[pgSQLValueFunctionOp]string{
	pgSVFCurrentDate: "date", pgSVFCurrentTime: "timetz", pgSVFCurrentTimeN: "timetz",
	pgSVFCurrentTimestamp: "timestamptz", pgSVFCurrentTimestampN: "timestamptz",
	pgSVFLocaltime: "time", pgSVFLocaltimeN: "time", pgSVFLocaltimestamp: "timestamp",
	pgSVFLocaltimestampN: "timestamp", pgSVFCurrentRole: "name", pgSVFCurrentUser: "name",
	pgSVFUser: "name", pgSVFSessionUser: "name", pgSVFCurrentCatalog: "name", pgSVFCurrentSchema: "name",
}

// funcType is the type a call returns when the rewriter can tell (see
// Catalog.functionResult), "" otherwise.
func (w *walker) funcType(fc *pgFuncCall, sc *scope, sets bool) string {
	schema, name, err := w.funcName(fc)
	if err != nil || fc.FuncVariadic {
		return ""
	}
	if len(fc.Args) == 1 && w.cat.OtherTypes[name] {
		// Without an exact match PostgreSQL may take it for a cast to the
		// type (red team round 43: initcap('a') was a public.initcap
		// domain, whose = an owner had made).
		return ""
	}
	args, ok := w.argTypes(fc, sc)
	if !ok || w.mayBeProjection(fc, args) {
		return ""
	}
	return w.cat.functionResult(w.sess, schema, name, args, sets)
}

// mayBeProjection reports whether PostgreSQL may read the call fc, with
// arguments of types args, as the field of a row: f(x) of one row-typed
// argument, unqualified and undecorated, is x.f when no function f takes
// it (ParseFuncOrColumn's could_be_projection), and its type is the
// field's (red team round 55a: md5(s) over a whole row s was taken for
// text, a row of pg_sequences, and its columns misnamed an owner's
// =(int8, text) into an IN list). An argument of a type not worked out
// may be such a row; an untyped literal may not.
func (w *walker) mayBeProjection(fc *pgFuncCall, args []string) bool {
	if len(args) != 1 || len(fc.Funcname) != 1 || fc.AggStar || fc.AggDistinct || fc.Over != nil ||
		fc.FuncVariadic || len(fc.AggOrder) > 0 || fc.AggFilter != nil {
		return false
	}
	return args[0] == "" || w.cat.mayBeRowType(args[0])
}

// operatorType is the type an operator expression returns when the
// rewriter can tell (see Catalog.operatorResult); IN, BETWEEN and IS
// DISTINCT FROM are boolean, whatever operators they run.
func (w *walker) operatorType(e *pgAExpr, sc *scope) string {
	switch e.Kind {
	case pgAExprKindAEXPRIN, pgAExprKindAEXPRDISTINCT, pgAExprKindAEXPRNOTDISTINCT,
		pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN, pgAExprKindAEXPRBETWEENSYM, pgAExprKindAEXPRNOTBETWEENSYM:
		return "bool"
	case pgAExprKindAEXPROP:
	default:
		return ""
	}
	schema, name, err := qualifiedName(e.Name)
	if err != nil || e.Lexpr.GetRowExpr() != nil {
		return ""
	}
	exact, known := w.operandTypes(e.Lexpr, e.Rexpr, sc)
	return w.cat.operatorResult(w.sess, schema, name, e.Lexpr == nil, exact, known)
}

// commonType is the type of COALESCE(args…) when every argument of a known
// type has that one (select_common_type), untyped literals aside; "" if
// any other's is unknown.
func (w *walker) commonType(args []*pgNode, sc *scope) string {
	common := ""
	for _, a := range args {
		t, flex := w.exprType(a, sc)
		switch {
		case t == "" && flex:
		case t == "" || common != "" && t != common:
			return ""
		default:
			common = t
		}
	}
	return common
}

// tableColumn is the column of a catalog relation's item that name refers
// to, nil if none. An alias's column list renames by position: FROM
// accounts a(x, y, id) names iban a.id (red team round 5, a note).
func (it *item) tableColumn(name string) *Column {
	if !it.colsSet {
		return it.table.Column(name)
	}
	if i := slices.Index(it.cols.names, name); it.cols.known && i >= 0 && i < len(it.table.Columns) {
		return it.table.Columns[i]
	}
	return nil
}

// qualifiedItem finds the item a qualified column reference (rel.col,
// schema.rel.col, rel.*) names. done is false when the reference is left to
// resolve as an unqualified column col: it has no qualifier, or its one
// qualifier names no item ((composite).field written as composite.field).
// When done, it is nil if nothing matches.
func qualifiedItem(sc *scope, names []string, star bool) (it *item, col string, done bool) {
	qual := names
	if !star {
		qual, col = names[:len(names)-1], names[len(names)-1]
	}
	if len(qual) == 0 {
		return nil, col, false
	}
	rel := qual[len(qual)-1]
	schema := ""
	if len(qual) >= 2 {
		schema = qual[len(qual)-2]
	}
	for s := sc; s != nil; s = s.parent {
		for _, it := range s.items {
			if it.refname == rel && (schema == "" || !it.aliased && it.schema == schema) {
				return it, col, true
			}
		}
	}
	if len(qual) > 1 || star {
		return nil, col, true
	}
	return nil, qual[0], false
}
