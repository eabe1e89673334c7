package rewrite

import "fmt"

// Attribute notation. PostgreSQL reads x.f, when FROM item x has no column
// f, as the function call f(x) on x's whole row, and (e).f, when e's type
// has no field f, as f(e) (ParseFuncOrColumn). The walker would see a
// column reference, never a function call: the call would escape the
// function allow-list and the fence rule, and with the inline rewrite
// (inline.go) f would get the table's raw row, its masked columns and the
// columns a delegation leaves out included. So such a reference is refused
// (42703, as for a column that does not exist): a column of the item
// passes, anything else does not.
//
// Where the rewriter does not know the item's columns (a function in FROM
// without a column definition list, a subquery column it cannot name) or
// the type of e, it cannot tell a field from a call. It then refuses f when
// a function of that name exists in any schema of the catalog or on the
// allow-list, and lets it pass otherwise: without a function to call,
// PostgreSQL can only read a column or field, or fail.

// checkQualifiedColumn refuses x.f (or schema.x.f) where item x has no
// column f. names are the reference's names, without a final *.
func (w *walker) checkQualifiedColumn(sc *scope, names []string) error {
	if len(names) < 2 {
		return nil
	}
	it, col, done := qualifiedItem(sc, names, false)
	if !done || it == nil {
		return nil // no such item: PostgreSQL says so
	}
	has, known := it.hasColumn(col)
	switch {
	case has && !(it.workedOut && w.maybeFunction(col)):
		// A column mandate named itself is no proof against a call: had
		// it named it wrong, PostgreSQL would call col(x) (red team round
		// 54b).
		return nil
	case known && !has:
		return attributeNotation(it.refname, col)
	case w.maybeFunction(col):
		return &Error{Code: codeUndefinedColumn, Msg: fmt.Sprintf(
			"cannot tell whether %s.%s is a column of %s or the function call %s(%s), which mandate does not allow: "+
				"name the columns in the FROM item's alias (AS %s(a, b, …)) or refer to the column unqualified",
			it.refname, col, it.refname, col, it.refname, it.refname)}
	}
	return nil
}

// checkIndirection refuses (e).f where f may be a function called on e
// rather than a field of e.
func (w *walker) checkIndirection(ind *pgAIndirection, sc *scope) error {
	cols, what := w.compositeColumns(ind.Arg, sc)
	for _, el := range ind.Indirection {
		s := el.GetString_()
		if s == nil {
			if el.GetAStar() == nil {
				cols, what = unknownColumns, "" // a subscript: an element of unknown type
			}
			continue
		}
		f := s.Sval
		switch {
		case cols.has(f):
		case cols.known:
			return attributeNotation(what, f)
		case w.maybeFunction(f):
			return &Error{Code: codeUndefinedColumn, Msg: fmt.Sprintf(
				"cannot tell whether (…).%s is a field or the function call %s(…), which mandate does not allow: write the call %s(…) instead",
				f, f, f)}
		}
		cols, what = unknownColumns, "" // a field's own type is not known here
	}
	return nil
}

func attributeNotation(rel, col string) *Error {
	return &Error{Code: codeUndefinedColumn, Msg: fmt.Sprintf(
		"column %s.%s does not exist (mandate does not allow attribute notation for function calls: write %s(%s) to call a function)",
		rel, col, col, rel)}
}

// compositeColumns are the fields of e's row type when e is a whole-row
// reference to a FROM item (x, x.*) or a column whose type is a catalog
// relation's row type, with e's name for messages.
func (w *walker) compositeColumns(e *pgNode, sc *scope) (columns, string) {
	cr := e.GetColumnRef()
	if cr == nil {
		return unknownColumns, ""
	}
	names, ok := stringFields(cr.Fields)
	if !ok || len(names) == 0 {
		return unknownColumns, ""
	}
	if last := cr.Fields[len(cr.Fields)-1]; last.GetAStar() != nil {
		if it, _, done := qualifiedItem(sc, names, true); done && it != nil {
			return it.columnsOf(), it.refname
		}
		return unknownColumns, ""
	}
	if len(names) == 1 {
		// PostgreSQL tries a column first, level by level, then a FROM item.
		for s := sc; s != nil; s = s.parent {
			var match *item
			for _, it := range s.items {
				has, known := it.hasColumn(names[0])
				switch {
				case has && match != nil:
					return unknownColumns, "" // ambiguous: PostgreSQL refuses
				case has:
					match = it
				case !known:
					return unknownColumns, "" // it may be a column of this item
				}
			}
			if match != nil {
				return w.columnType(match, names[0])
			}
		}
		for s := sc; s != nil; s = s.parent {
			for _, it := range s.items {
				if it.refname == names[0] {
					return it.columnsOf(), it.refname
				}
			}
		}
		return unknownColumns, ""
	}
	if it, col, done := qualifiedItem(sc, names, false); done && it != nil {
		return w.columnType(it, col)
	}
	return unknownColumns, ""
}

// columnType are the fields of an item's column when the column's type is
// a catalog relation's row type.
func (w *walker) columnType(it *item, col string) (columns, string) {
	if it.table == nil || it.colsSet {
		return unknownColumns, ""
	}
	c := it.table.Column(col)
	if c == nil || c.array || c.typeName == nil {
		return unknownColumns, ""
	}
	var schema, name string
	switch tn := c.typeName.Names; len(tn) {
	case 1:
		schema, name = "pg_catalog", tn[0].GetString_().GetSval()
	case 2:
		schema, name = tn[0].GetString_().GetSval(), tn[1].GetString_().GetSval()
	default:
		return unknownColumns, ""
	}
	if t := w.cat.lookupRelation(Session{}, schema, name); t != nil {
		return tableColumns(t), col
	}
	return unknownColumns, ""
}

// maybeFunction reports whether attribute notation .name could call a
// function: one of that name exists in some schema of the catalog (not
// only on the search path, which the proxy may track wrongly), or is on the
// allow-list or among the aggregates known without a catalog.
func (w *walker) maybeFunction(name string) bool {
	if w.opts.Functions[name] || knownAggregates[name] {
		return true
	}
	for _, s := range w.cat.Schemas {
		if len(s.Functions[name]) > 0 {
			return true
		}
	}
	return false
}
