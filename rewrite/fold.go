package rewrite

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Constants the planner folds. The fence rule (doc.go) lets a qual that
// reads no protected column go unfenced, but an expression that reads no
// column at all can still reveal hidden rows: PostgreSQL evaluates what it
// did not fold at plan time per row, and only for the rows that reach it,
// so an error it raises (a domain's CHECK, an invalid XML document, a
// stable function's bad input) says whether some row — possibly one the
// filter hides — made "t.id <> 17 OR <it>" evaluate it. Only what
// PostgreSQL provably computes once, when it parses or plans the
// statement, is harmless: its error, if any, does not depend on rows.
//
// The rewriter trusts these to be computed then, and nothing else:
//   - literals, and operators applied to untyped literals and numbers;
//   - a cast of an untyped literal (or of a parameter, see below) to a
//     built-in base type (trustedInput): the type's input function runs
//     while parsing, whatever its volatility; a domain is not one of them,
//     its constraints are checked when the cast is evaluated;
//   - a cast of a typed constant (a number, a boolean, a bit string, or a
//     cast it trusts) between the types whose casts are all immutable
//     (immutableCast), which eval_const_expressions folds;
//   - an immutable function of such constants (the catalog's provolatile);
//   - an operator of such constants of known types, except those involving
//     timestamptz, || and @@: the only built-in operators whose functions
//     are not immutable (operatorMayBeStable).
//
// Anything else that runs at run time without reading a column — a
// non-immutable function, a cast to another type, XMLPARSE and the other
// XML constructors, an operator of other operands, a sublink, CURRENT_DATE
// and the like — makes the statement dangerous in a qual when it may raise
// an error itself (it is not leakproof) or feeds an expression that may. LIMIT,
// OFFSET, TABLESAMPLE arguments and functions in FROM are evaluated once
// per scan, not per row, so they are exempt as quals; but a scan inside a
// sublink runs only once a row reaches the sublink, so what may fail there
// counts for the sublink: a function that may, a LIMIT or OFFSET other
// than a non-negative integer (PostgreSQL checks the sign at run time), any
// TABLESAMPLE (its method checks the arguments then).
//
// A parameter counts as a constant: under a custom plan (PostgreSQL's first
// five executions, and later ones while cheaper) it is one. Under a generic
// plan ($1::int2 with $1 sent as int4, plan_cache_mode =
// force_generic_plan) the cast runs per row; fencing every "col = $1::t" for
// it would cost the index scans prepared statements exist for. A known
// limit, documented in docs/security.md.

// rowFreeValue notes an expression evaluated at run time that reads no
// column, and may raise an error itself (raises) or through the enclosing
// expression (c.leaky): in a per-row qual it makes the statement dangerous.
func (w *walker) rowFreeValue(c ectx, raises bool) {
	if c.qual && !c.once && (raises || c.leaky) {
		w.dangerous = true
	}
}

// leakyNode marks an expression that may raise an error (or leak its
// arguments): its arguments are walked as leaky.
func (w *walker) leakyNode(c *ectx) {
	c.leaky = true
}

// castFolds reports whether PostgreSQL computes the cast tc while parsing
// or planning the statement (see above).
func (w *walker) castFolds(tc *pgTypeCast) bool {
	target, array, ok := w.builtinType(tc.TypeName)
	if !ok {
		return false
	}
	switch arg := tc.Arg.GetNode().(type) {
	case *pgNodeParamRef:
		return trustedInput[target]
	case *pgNodeAConst:
		var source string
		switch arg.AConst.Val.(type) {
		case nil, *pgAConstSval:
			return trustedInput[target] // NULL or an untyped literal: the input function parses it
		case *pgAConstIval:
			source = "int4"
		case *pgAConstFval:
			source = "numeric" // or int8: both cast immutably
		case *pgAConstBoolval:
			source = "bool"
		case *pgAConstBsval:
			source = "bit"
		default:
			return false
		}
		return !array && immutableCast[source] && immutableCast[target]
	case *pgNodeTypeCast:
		source, srcArray, ok := w.builtinType(arg.TypeCast.TypeName)
		return ok && !array && !srcArray && immutableCast[source] && immutableCast[target] && w.castFolds(arg.TypeCast)
	}
	return false
}

// builtinType is the internal name of a type that certainly is pg_catalog's
// (written pg_catalog.x, a keyword type, or unqualified while pg_catalog
// comes first on the search path), and whether it is an array.
func (w *walker) builtinType(tn *pgTypeName) (name string, array, ok bool) {
	if tn == nil || tn.Setof || tn.PctType {
		return "", false, false
	}
	var n string
	switch names := tn.Names; {
	case len(names) == 1 || w.keywordOnlyIn17(tn):
		// No DDL reaches the upstream through mandate, so the session's
		// temp schema, searched first for types, holds none.
		if path := w.sess.functionPath(); len(path) == 0 || path[0] != "pg_catalog" {
			return "", false, false
		}
		if n = names[len(names)-1].GetString_().GetSval(); !w.cat.hasBuiltinType(n) {
			return "", false, false // another schema's, further on the path
		}
	case len(names) == 2:
		if names[0].GetString_().GetSval() != "pg_catalog" {
			return "", false, false
		}
		n = names[1].GetString_().GetSval()
	default:
		return "", false, false
	}
	return canonicalType(n), len(tn.ArrayBounds) > 0, n != ""
}

// keywordOnlyIn17 reports whether tn is pg_catalog.json (or .record) only
// because PostgreSQL 17's grammar, mandate's, reads the bare word as a
// system type: an older upstream looks the word up on the search path
// (red team round 39: a public.json with a cast to json, ahead of
// pg_catalog, passed for the built-in).
func (w *walker) keywordOnlyIn17(tn *pgTypeName) bool {
	if len(tn.Names) != 2 || tn.Names[0].GetString_().GetSval() != "pg_catalog" {
		return false
	}
	switch tn.Names[1].GetString_().GetSval() {
	case "json", "record":
	default:
		return false
	}
	return !w.writtenQualified(tn.Location)
}

// writtenQualified reports whether the statement spells the name at loc
// with pg_catalog; false where that is unknown (the bare word assumed).
func (w *walker) writtenQualified(loc int32) bool {
	if loc < 0 || int(loc) >= len(w.lowerSQL) {
		return false
	}
	return strings.HasPrefix(strings.TrimLeft(w.lowerSQL[loc:], `"`), "pg_catalog")
}

// funcName is the schema and name of a call as an older upstream reads it:
// PostgreSQL 16's and 17's grammars (mandate's) write json_object(…) and
// SYSTEM_USER as pg_catalog's functions, where PostgreSQL 15 looks the bare
// name up on the search path (red team round 48b: an evil.json_object,
// first on the path, ran for json_object('{a,b}')); such a call is
// unqualified here unless the statement qualifies it.
func (w *walker) funcName(fc *pgFuncCall) (schema, name string, err error) {
	schema, name, err = qualifiedName(fc.Funcname)
	if err != nil || schema != "pg_catalog" || (name != "json_object" && name != "system_user") {
		return schema, name, err
	}
	if !w.writtenQualified(fc.Location) {
		return "", name, nil
	}
	return schema, name, nil
}

// immutableCast are the built-in types whose input and output functions
// are immutable and whose casts to each other (pg_cast) all are, so a cast
// between two of them folds (checked against PostgreSQL 15's catalog).
var immutableCast = map[string]bool{
	"bool": true, "int2": true, "int4": true, "int8": true, "float4": true, "float8": true,
	"numeric": true, "text": true, "varchar": true, "bpchar": true, "name": true, "oid": true,
	"bytea": true, "json": true, "jsonb": true, "uuid": true, "bit": true, "varbit": true,
	"macaddr": true, "inet": true, "cidr": true,
}

// trustedInput are the built-in base types whose input function PostgreSQL
// applies to an untyped literal while parsing (stringTypeDatum): any error
// is raised then, whatever the rows.
var trustedInput = func() map[string]bool {
	m := map[string]bool{
		"date": true, "time": true, "timetz": true, "timestamp": true, "timestamptz": true,
		"interval": true, "money": true, "xml": true, "tsvector": true, "tsquery": true,
		"macaddr8": true, "pg_lsn": true, "regclass": true, "regtype": true, "regproc": true,
		"regprocedure": true, "regoper": true, "regoperator": true, "regnamespace": true,
		"regrole": true, "regconfig": true, "regdictionary": true, "regcollation": true,
	}
	for t := range immutableCast {
		m[t] = true
	}
	return m
}()

// readsRows reports whether an expression reads rows: it contains a
// column reference or an aggregate or window function (anywhere, sublinks
// included). Then it is evaluated per row of the relations it reads, or
// above the scans, and the fence rule's column test applies instead.
func (w *walker) readsRows(ns ...*pgNode) bool {
	for _, n := range ns {
		if n != nil && w.containsRowRead(n.ProtoReflect()) {
			return true
		}
	}
	return false
}

func (w *walker) containsRowRead(m protoreflect.Message) bool {
	if n, ok := m.Interface().(*pgNode); ok {
		if n.GetColumnRef() != nil {
			return true
		}
		if fc := n.GetFuncCall(); fc != nil && w.aggregateCall(fc) {
			return true
		}
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = w.containsRowRead(l.Get(i).Message())
			}
		} else {
			found = w.containsRowRead(v.Message())
		}
		return !found
	})
	return found
}

// aggregateCall reports whether fc is an aggregate or window function call,
// as funcCall decides it.
func (w *walker) aggregateCall(fc *pgFuncCall) bool {
	if fc.Over != nil || fc.AggStar || fc.AggDistinct || fc.AggWithinGroup || len(fc.AggOrder) > 0 || fc.AggFilter != nil {
		return true
	}
	schema, name, err := w.funcName(fc)
	if err != nil {
		return true // refused by funcCall; no matter here
	}
	resolved, overloads := w.cat.lookupFunction(w.sess, schema, name)
	for _, f := range overloads {
		if f.accepts(callArgs(fc)) && (f.Kind == KindAggregate || f.Kind == KindWindow) {
			return true
		}
	}
	return len(overloads) == 0 && knownAggregates[name] && resolved == "pg_catalog"
}
