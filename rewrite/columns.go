package rewrite

import "strconv"

// Column names of FROM items. PostgreSQL reads x.name, when FROM item x
// has no column "name", as the function call name(x) on x's whole row
// (attribute notation, attribute.go). To tell a column from such a call the
// rewriter needs the names of every FROM item's columns: a catalog
// relation's come from the catalog; a subquery's, a CTE's, a VALUES list's
// and a join's are worked out here as PostgreSQL names them; a function's
// from a column definition list, or its one column when it returns a
// built-in base type. Where a name cannot be worked out
// with certainty the item's columns are unknown, never guessed: a wrong
// name could let a function call pass as a column.

// columns is a list of column names, or unknown. A list that is right as
// a set of names but not position by position (a join's: USING merges
// columns) is not exact, and cannot be renamed by an alias's column list.
// An unknown list may still hold names known to be columns (those of an
// alias's column list), but not all of them.
type columns struct {
	names []string
	known bool
	exact bool
}

var unknownColumns = columns{}

func knownColumns(names []string) columns { return columns{names: names, known: true, exact: true} }

func (c columns) has(name string) bool {
	for _, n := range c.names {
		if n == name {
			return true
		}
	}
	return false
}

// renamed applies an alias's column list (t AS a(x, y)): the first names
// are replaced, the rest keep theirs. Without the full list, the alias's
// names are still known to be columns.
func (c columns) renamed(alias *pgAlias) columns {
	colnames := alias.GetColnames()
	if len(colnames) == 0 {
		return c
	}
	aliases := make([]string, 0, len(colnames))
	for _, n := range colnames {
		s := n.GetString_()
		if s == nil {
			return unknownColumns
		}
		aliases = append(aliases, s.Sval)
	}
	if !c.known || !c.exact || len(aliases) > len(c.names) {
		return columns{names: aliases} // PostgreSQL refuses too many names
	}
	return knownColumns(append(aliases, c.names[len(aliases):]...))
}

// union is every name of every list, known when each is.
func union(cs ...columns) columns {
	out := knownColumns(nil)
	for _, c := range cs {
		if !c.known {
			return unknownColumns
		}
		out.names = append(out.names, c.names...)
		out.exact = out.exact && c.exact
	}
	return out
}

// tableColumns are a catalog relation's columns, unknown when the catalog
// lists none.
func tableColumns(t *Table) columns {
	if t == nil || len(t.Columns) == 0 {
		return unknownColumns
	}
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return knownColumns(names)
}

// columnsOf are the columns an item exposes to qualified references.
func (it *item) columnsOf() columns {
	if it.table != nil && !it.colsSet {
		return tableColumns(it.table)
	}
	return it.cols
}

// hasColumn reports whether x.name names a column of the item, and whether
// the rewriter can tell. A catalog relation also has the system columns,
// except a view, which has none.
func (it *item) hasColumn(name string) (has, known bool) {
	if it.table != nil && !it.colsSet {
		if systemColumns[name] && it.table.Kind != KindView {
			return true, true
		}
		return it.table.Column(name) != nil, len(it.table.Columns) > 0
	}
	return it.cols.has(name), it.cols.known
}

// levelColumns are the columns * expands to at one query level: those of
// every FROM item. A join's alias repeats its sides' columns and USING
// merges some, so with a join the names are right as a set only.
func levelColumns(sc *scope) columns {
	cs := make([]columns, 0, len(sc.items))
	for _, it := range sc.items {
		cs = append(cs, it.columnsOf())
	}
	c := union(cs...)
	c.exact = c.exact && !sc.joins
	return c
}

// outputColumns names the output columns of one query level (not a set
// operation) the way PostgreSQL does, after the level has been walked.
func outputColumns(s *pgSelectStmt, sc *scope) columns {
	if len(s.ValuesLists) > 0 {
		n := len(s.ValuesLists[0].GetList().GetItems())
		names := make([]string, n)
		for i := range names {
			names[i] = "column" + strconv.Itoa(i+1)
		}
		return knownColumns(names)
	}
	var out []string
	exact := true
	for _, n := range s.TargetList {
		rt := n.GetResTarget()
		if rt == nil {
			return unknownColumns
		}
		if rt.Name != "" {
			out = append(out, rt.Name)
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil {
			var c columns
			if len(cr.Fields) == 1 {
				c = levelColumns(sc)
			} else if names, ok := stringFields(cr.Fields); ok {
				if it, _, done := qualifiedItem(sc, names, true); done && it != nil {
					c = it.columnsOf()
				}
			}
			if !c.known {
				return unknownColumns
			}
			out, exact = append(out, c.names...), exact && c.exact
			continue
		}
		name, strength := figureColname(rt.Val)
		if strength < 0 {
			return unknownColumns
		}
		out = append(out, name)
	}
	return columns{names: out, known: true, exact: exact}
}

// stringFields are a column reference's names before a final *.
func stringFields(fields []*pgNode) ([]string, bool) {
	var names []string
	for _, f := range fields {
		if f.GetAStar() != nil {
			continue
		}
		s := f.GetString_()
		if s == nil {
			return nil, false
		}
		names = append(names, s.Sval)
	}
	return names, true
}

// figureColname is PostgreSQL's FigureColnameInternal for the node kinds
// the walker allows: the name of an unnamed target list entry and its
// strength (2 a name of its own, 1 a type's name, 0 "?column?"), or -1
// when the rewriter does not work it out.
func figureColname(n *pgNode) (string, int) {
	if n.GetNode() == nil {
		return "?column?", 0 // CASE without ELSE
	}
	switch x := n.GetNode().(type) {
	case *pgNodeColumnRef:
		f := x.ColumnRef.Fields
		if s := f[len(f)-1].GetString_(); s != nil {
			return s.Sval, 2
		}
		return "", -1
	case *pgNodeAIndirection:
		fname := ""
		for _, i := range x.AIndirection.Indirection {
			if s := i.GetString_(); s != nil {
				fname = s.Sval
			}
		}
		if fname != "" {
			return fname, 2
		}
		return figureColname(x.AIndirection.Arg)
	case *pgNodeFuncCall:
		f := x.FuncCall.Funcname
		if s := f[len(f)-1].GetString_(); s != nil {
			return s.Sval, 2
		}
		return "", -1
	case *pgNodeAExpr:
		if x.AExpr.Kind == pgAExprKindAEXPRNULLIF {
			return "nullif", 2
		}
		return "?column?", 0
	case *pgNodeTypeCast:
		name, strength := figureColname(x.TypeCast.Arg)
		if strength < 0 || strength > 1 {
			return name, strength
		}
		if names := x.TypeCast.TypeName.GetNames(); len(names) > 0 {
			if s := names[len(names)-1].GetString_(); s != nil {
				return s.Sval, 1
			}
		}
		return "", -1
	case *pgNodeCollateClause:
		return figureColname(x.CollateClause.Arg)
	case *pgNodeGroupingFunc:
		return "grouping", 2
	case *pgNodeSubLink:
		switch x.SubLink.SubLinkType {
		case pgSubLinkTypeEXISTS:
			return "exists", 2
		case pgSubLinkTypeARRAY:
			return "array", 2
		case pgSubLinkTypeEXPR, pgSubLinkTypeMULTIEXPR:
			return "", -1 // the subquery's own column name
		}
		return "?column?", 0
	case *pgNodeCaseExpr:
		name, strength := figureColname(x.CaseExpr.Defresult)
		if strength < 0 || strength > 1 {
			return name, strength
		}
		return "case", 1
	case *pgNodeAArrayExpr:
		return "array", 2
	case *pgNodeRowExpr:
		return "row", 2
	case *pgNodeCoalesceExpr:
		return "coalesce", 2
	case *pgNodeMinMaxExpr:
		switch x.MinMaxExpr.Op {
		case pgMinMaxGreatest:
			return "greatest", 2
		case pgMinMaxLeast:
			return "least", 2
		}
		return "", -1
	case *pgNodeSqlvalueFunction:
		if name, ok := sqlValueFunctionNames[x.SqlvalueFunction.Op]; ok {
			return name, 2
		}
		return "", -1
	case *pgNodeAConst, *pgNodeParamRef, *pgNodeBoolExpr, *pgNodeNullTest, *pgNodeBooleanTest:
		return "?column?", 0
	}
	return "", -1
}

var sqlValueFunctionNames = map[pgSQLValueFunctionOp]string{
	pgSVFCurrentDate: "current_date", pgSVFCurrentTime: "current_time", pgSVFCurrentTimeN: "current_time",
	pgSVFCurrentTimestamp: "current_timestamp", pgSVFCurrentTimestampN: "current_timestamp",
	pgSVFLocaltime: "localtime", pgSVFLocaltimeN: "localtime", pgSVFLocaltimestamp: "localtimestamp",
	pgSVFLocaltimestampN: "localtimestamp", pgSVFCurrentRole: "current_role", pgSVFCurrentUser: "current_user",
	pgSVFUser: "user", pgSVFSessionUser: "session_user", pgSVFCurrentCatalog: "current_catalog",
	pgSVFCurrentSchema: "current_schema",
}

// functionColumns are a function in FROM's columns when its column
// definition list names them (f() AS t(a int, b text)); a function's own
// result columns are not in the catalog, but an alias's column list names
// some of them (unnest(…) WITH ORDINALITY AS t(x, n)).
func functionColumns(rf *pgRangeFunction) columns {
	if rf.Ordinality || rf.IsRowsfrom || len(rf.Coldeflist) == 0 {
		return unknownColumns.renamed(rf.Alias)
	}
	names := make([]string, 0, len(rf.Coldeflist))
	for _, n := range rf.Coldeflist {
		d := n.GetColumnDef()
		if d == nil {
			return unknownColumns
		}
		names = append(names, d.Colname)
	}
	return knownColumns(names)
}

// scalarFunctionColumns are the columns of a function in FROM known to
// return one built-in base type (generate_series(0, n) AS s): one, named
// refname (its alias, or the function's name), and ordinality WITH
// ORDINALITY, as an alias's column list renames them. Otherwise, or for a
// row type, not known (psql's \d reads an outer prattrs[s] beside such a
// function: red team round 53b).
func (w *walker) scalarFunctionColumns(rf *pgRangeFunction, sc *scope, refname string) columns {
	if rf.IsRowsfrom || len(rf.Coldeflist) > 0 || len(rf.Functions) != 1 {
		return unknownColumns.renamed(rf.Alias)
	}
	items := rf.Functions[0].GetList().GetItems()
	if len(items) == 0 || items[0].GetFuncCall() == nil {
		return unknownColumns.renamed(rf.Alias)
	}
	fc := items[0].GetFuncCall()
	t := w.funcType(fc, sc, true)
	if t == "" || w.cat.mayBeRowType(t) || w.cat.Pseudo[t] || w.cat.BuiltinTypes == nil || !w.cat.BuiltinTypes[t] ||
		w.cat.hasOutParameters(fc.Funcname[len(fc.Funcname)-1].GetString_().GetSval()) {
		// An OUT parameter names the column (chooseScalarFunctionAlias:
		// json_array_elements_text's is value; red team round 54b, high:
		// mandate took ts_stat.ts_stat over one aliased ts_stat for its
		// column, and PostgreSQL ran the call ts_stat(text) past the
		// allow-list, SQL from a string).
		return unknownColumns.renamed(rf.Alias)
	}
	names := []string{refname}
	if rf.Ordinality {
		names = append(names, "ordinality")
	}
	return knownColumns(names).renamed(rf.Alias)
}

// usingColumns are the columns of a JOIN … USING (a, b) AS alias.
func usingColumns(using []*pgNode) columns {
	names := make([]string, 0, len(using))
	for _, n := range using {
		s := n.GetString_()
		if s == nil {
			return unknownColumns
		}
		names = append(names, s.Sval)
	}
	return knownColumns(names)
}
