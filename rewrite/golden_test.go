package rewrite

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mandate-proxy/mandate/grant"
)

var update = flag.Bool("update", false, "rewrite the expected files of golden tests")

// goldenCase is one directory under testdata: input.sql; optional "grants"
// (a scenario of helpers_test.go, default alice) and "session" (lines
// search_path=a,b / temp=pg_temp_3 / user=u / params=oid[],int8); expected.sql, or "error"
// holding the SQLSTATE when the statement is refused.
type goldenCase struct {
	dir      string
	input    string
	scenario string
	sess     Session
}

func loadCases(t *testing.T) []goldenCase {
	t.Helper()
	var dirs []string
	for _, pattern := range []string{"testdata/*/input.sql", "testdata/unsupported/*/input.sql"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no golden cases")
	}
	var cases []goldenCase
	for _, d := range dirs {
		c := goldenCase{dir: d, input: readFile(t, filepath.Join(d, "input.sql")), scenario: "alice"}
		if s := strings.TrimSpace(readOptional(t, filepath.Join(d, "grants"))); s != "" {
			c.scenario = s
		}
		for _, line := range strings.Split(readOptional(t, filepath.Join(d, "session")), "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			switch k {
			case "search_path":
				c.sess.SearchPath = strings.Split(v, ",")
			case "temp":
				c.sess.TempSchema = v
			case "user":
				c.sess.User = v
			case "params":
				c.sess.ParamTypes = strings.Split(v, ",")
			case "":
			default:
				t.Fatalf("%s: unknown session key %q", d, k)
			}
		}
		cases = append(cases, c)
	}
	return cases
}

func TestGolden(t *testing.T) {
	cat := testCatalog(t)
	opts := testOptions()
	sets := scenarios()
	for _, c := range loadCases(t) {
		t.Run(strings.TrimPrefix(c.dir, "testdata/"), func(t *testing.T) {
			set := sets[c.scenario]
			if set == nil {
				t.Fatalf("unknown scenario %q", c.scenario)
			}
			var res Result
			stmts, err := Parse(c.input)
			if err == nil {
				res, err = Rewrite(stmts, cat, c.sess, &setSource{set: set}, opts)
			}
			errFile, sqlFile := filepath.Join(c.dir, "error"), filepath.Join(c.dir, "expected.sql")
			if *update {
				writeGolden(t, c.dir, res, err)
				return
			}
			if want := strings.TrimSpace(readOptional(t, errFile)); want != "" {
				var re *Error
				if !errors.As(err, &re) {
					t.Fatalf("want SQLSTATE %s, got %v (SQL %q)", want, err, res.SQL)
				}
				if re.Code != want {
					t.Fatalf("want SQLSTATE %s, got %s: %s", want, re.Code, re.Msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("rewrite: %v", err)
			}
			want := readFile(t, sqlFile)
			if got, exp := normalize(t, res.SQL), normalize(t, want); got != exp {
				t.Errorf("rewritten SQL differs\n got: %s\nwant: %s", got, exp)
			}
			if err := checkWrapped(res.SQL, cat, c.sess, opts, set); err != nil {
				t.Errorf("invariant: %v\nSQL: %s", err, res.SQL)
			}
		})
	}
}

func writeGolden(t *testing.T, dir string, res Result, err error) {
	t.Helper()
	errFile, sqlFile := filepath.Join(dir, "error"), filepath.Join(dir, "expected.sql")
	var re *Error
	if err != nil {
		if !errors.As(err, &re) {
			t.Fatalf("untyped error: %v", err)
		}
		_ = os.Remove(sqlFile)
		if e := os.WriteFile(errFile, []byte(re.Code+"\n# "+re.Msg+"\n"), 0o644); e != nil {
			t.Fatal(e)
		}
		return
	}
	_ = os.Remove(errFile)
	got := normalize(t, res.SQL)
	if old, e := os.ReadFile(sqlFile); e == nil && normalize(t, string(old)) == got {
		return // same meaning: keep the file's own spelling
	}
	// Canonical (deparsed) form, whether the rewrite spliced or deparsed.
	if e := os.WriteFile(sqlFile, []byte(got+"\n"), 0o644); e != nil {
		t.Fatal(e)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readOptional(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	// Lines starting with # are comments (the error file keeps the message).
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// normalize compares SQL by meaning: parse and deparse, so spacing, case of
// keywords and redundant parentheses do not matter but every literal does.
func normalize(t testing.TB, sql string) string {
	t.Helper()
	stmts, err := Parse(sql)
	if err != nil {
		t.Fatalf("parse %q: %v", sql, err)
	}
	var out []string
	for _, raw := range stmts.tree.Stmts {
		s, err := deparse(raw.Stmt)
		if err != nil {
			t.Fatalf("deparse: %v", err)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

var injectedAlias = regexp.MustCompile(`^_m[0-9]+$`)

// checkWrapped is the invariant of every rewrite: in the output, each
// reference to a protected relation is the only FROM item of a derived table
// whose WHERE is exactly the grant's filter (AND the update filter under FOR
// UPDATE) and whose columns are the relation's, masked as granted.
// Every other relation reference names its schema, so the upstream resolves
// it as the rewriter did whatever its search_path; only CTE references are
// unqualified.
func checkWrapped(sql string, cat *Catalog, sess Session, opts *Options, set *grant.Set) error {
	stmts, err := Parse(sql)
	if err != nil {
		return fmt.Errorf("output does not parse: %v", err)
	}
	o := opts.withDefaults()
	for _, raw := range stmts.tree.Stmts {
		wrapped := map[*pgRangeVar]bool{}
		ctes := map[string]bool{}
		var rels []*pgRangeVar
		var failure error
		visitMessages(raw.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			switch x := m.Interface().(type) {
			case *pgLockingClause:
				return false // names there are aliases, not relations
			case *pgCommonTableExpr:
				ctes[x.Ctename] = true
			case *pgRangeVar:
				rels = append(rels, x)
			case *pgInsertStmt, *pgUpdateStmt, *pgDeleteStmt, *pgCopyStmt:
				rv, err := writeGuard(x, cat, sess, &o, set)
				if err != nil && failure == nil {
					failure = err
				}
				if rv != nil {
					wrapped[rv] = true
				}
			case *pgSelectStmt:
				if x != raw.Stmt.GetSelectStmt() {
					break
				}
				rv, err := inlined(x, cat, sess, &o, set)
				if err != nil && failure == nil {
					failure = err
				}
				if rv != nil {
					wrapped[rv] = true
				}
			case *pgRangeSubselect:
				rv, err := wrapper(x, cat, set)
				if err != nil && failure == nil {
					failure = err
				}
				if rv != nil {
					wrapped[rv] = true
				}
			}
			return true
		})
		if failure != nil {
			return failure
		}
		for _, rv := range rels {
			if rv.Schemaname == "" && !ctes[rv.Relname] {
				return fmt.Errorf("relation reference %s is not schema-qualified", rv.Relname)
			}
			tbl := cat.lookupRelation(sess, rv.Schemaname, rv.Relname)
			if tbl == nil || !o.protected(tbl) || wrapped[rv] {
				continue
			}
			if rv.Schemaname == "" && ctes[rv.Relname] {
				continue
			}
			return fmt.Errorf("protected relation %s is not wrapped", tbl.QualifiedName())
		}
	}
	return nil
}

// wrapper recognises an injected derived table and checks its filter and
// masks; it returns the wrapped RangeVar, or nil for an ordinary subquery.
func wrapper(rs *pgRangeSubselect, cat *Catalog, set *grant.Set) (*pgRangeVar, error) {
	sel := rs.Subquery.GetSelectStmt()
	if sel == nil || len(sel.FromClause) != 1 {
		return nil, nil
	}
	from := sel.FromClause[0]
	rv := from.GetRangeVar()
	if ts := from.GetRangeTableSample(); ts != nil {
		rv = ts.Relation.GetRangeVar()
	}
	if rv == nil || rv.Alias == nil || !injectedAlias.MatchString(rv.Alias.Aliasname) || rv.Schemaname == "" {
		return nil, nil
	}
	alias := rv.Alias.Aliasname
	tbl := cat.lookupRelation(Session{}, rv.Schemaname, rv.Relname)
	if tbl == nil {
		return nil, fmt.Errorf("wrapped relation %s.%s not in catalog", rv.Schemaname, rv.Relname)
	}
	if hidesStatistics(tbl) {
		return rv, statisticsHidden(sel, tbl, alias)
	}
	g := set.Lookup(tbl.QualifiedName())
	if !g.Can(grant.Select) {
		return nil, fmt.Errorf("%s wrapped without select permission", tbl.QualifiedName())
	}
	got := []string{"true"}
	if where := sel.WhereClause; where != nil {
		got = []string{exprSQL(where)}
		if sel.LimitOffset != nil {
			// Fenced: the filter may be followed by copies of the user's
			// conjuncts (pushdown.go), column-versus-constant comparisons.
			args := []*pgNode{where}
			if b := where.GetBoolExpr(); b != nil && b.Boolop == pgBoolExprTypeANDEXPR {
				args = b.Args
			}
			pushed := func(ns []*pgNode) bool {
				return !slices.ContainsFunc(ns, func(n *pgNode) bool { return !pushedShape(n, alias) })
			}
			if len(args) > 1 && pushed(args[1:]) {
				got = append(got, exprSQL(args[0]))
			}
			if pushed(args) {
				got = append(got, "true")
			}
		}
	}
	ok := false
	for _, f := range []grant.Expr{g.RowFilter(grant.Select), grant.And{Terms: []grant.Expr{g.RowFilter(grant.Select), g.RowFilter(grant.Update)}}} {
		want := "true"
		if f = simplify(f); f != grant.True {
			n, err := filterNode(f, tbl, alias)
			if err != nil {
				return nil, err
			}
			want = exprSQL(n)
		}
		ok = ok || slices.Contains(got, want)
	}
	if !ok {
		return nil, fmt.Errorf("%s wrapped with filter %s", tbl.QualifiedName(), got[0])
	}
	if len(sel.TargetList) != len(tbl.Columns) {
		return nil, fmt.Errorf("%s wrapped with %d columns, table has %d", tbl.QualifiedName(), len(sel.TargetList), len(tbl.Columns))
	}
	for i, c := range tbl.Columns {
		rt := sel.TargetList[i].GetResTarget()
		want := exprSQL(columnRef(alias, c.Name))
		if m, masked := g.Masks[c.Name]; masked {
			e, _ := maskExpr(m, c, columnRef(alias, c.Name))
			want = exprSQL(e)
			if rt.GetName() != c.Name {
				return nil, fmt.Errorf("%s.%s masked under another name %q", tbl.QualifiedName(), c.Name, rt.GetName())
			}
		}
		if got := exprSQL(rt.GetVal()); got != want {
			return nil, fmt.Errorf("%s.%s is %s, want %s", tbl.QualifiedName(), c.Name, got, want)
		}
	}
	return rv, nil
}

// inlined recognises a top-level SELECT over one protected table that reads
// it directly (inline.go) and checks it: the filter among the WHERE's
// conjuncts, every reference to a masked column inside that column's mask,
// no * or whole row of it while a column is masked, no subquery. It returns
// the table's RangeVar, or nil when sel does not read a protected table
// directly.
func inlined(sel *pgSelectStmt, cat *Catalog, sess Session, o *Options, set *grant.Set) (*pgRangeVar, error) {
	if len(sel.FromClause) != 1 || sel.FromClause[0].GetRangeVar() == nil {
		return nil, nil
	}
	rv := sel.FromClause[0].GetRangeVar()
	if rv.Schemaname == "" {
		return nil, nil // a CTE (or unqualified: checkWrapped says so)
	}
	tbl := cat.lookupRelation(sess, rv.Schemaname, rv.Relname)
	if tbl == nil || !o.protected(tbl) || hidesStatistics(tbl) {
		return nil, nil
	}
	name := tbl.QualifiedName()
	g := set.Lookup(name)
	if !g.Can(grant.Select) {
		return nil, fmt.Errorf("%s read without select permission", name)
	}
	if len(rv.GetAlias().GetColnames()) > 0 {
		return nil, fmt.Errorf("%s read directly under column aliases", name)
	}
	refname := rv.Relname
	if rv.Alias != nil {
		refname = rv.Alias.Aliasname
	}
	filter := map[*pgNode]bool{} // the conjuncts that are the filter's
	if f := simplify(g.RowFilter(grant.Select)); f != grant.True {
		n, err := filterNode(f, tbl, refname)
		if err != nil {
			return nil, err
		}
		have := map[string]*pgNode{}
		for _, c := range conjuncts(sel.WhereClause) {
			have[exprSQL(c)] = c
		}
		for _, c := range conjuncts(n) {
			got := have[exprSQL(c)]
			if got == nil {
				return nil, fmt.Errorf("%s read without its filter: WHERE %s", name, exprSQL(sel.WhereClause))
			}
			filter[got] = true
		}
	}
	var failure error
	fail := func(format string, args ...any) {
		if failure == nil {
			failure = fmt.Errorf(format, args...)
		}
	}
	var path []*pgNode // the nodes from the statement down to the current one
	var visit func(m protoreflect.Message)
	visit = func(m protoreflect.Message) {
		n, isNode := m.Interface().(*pgNode)
		if isNode {
			if filter[n] {
				return // the filter reads the columns as they are
			}
			path = append(path, n)
			defer func() { path = path[:len(path)-1] }()
		}
		switch x := m.Interface().(type) {
		case *pgTypeName:
			return // a name in a type modifier (varchar(n)) is a word, not a column
		case *pgSubLink, *pgRangeSubselect, *pgWithClause:
			fail("%s read directly beside a subquery", name)
		case *pgColumnRef:
			var names []string
			star := false
			for _, f := range x.Fields {
				if f.GetAStar() != nil {
					star = true
					continue
				}
				names = append(names, f.GetString_().GetSval())
			}
			if len(names) > 2 || len(names) == 2 && names[0] != refname || star && len(names) == 1 && names[0] != refname {
				return // not a column of the table (PostgreSQL says so)
			}
			if star || len(names) == 1 && names[0] == refname && tbl.Column(refname) == nil {
				if len(g.Masks) > 0 {
					fail("%s read whole (%s) while a column is masked", name, exprSQL(path[len(path)-1]))
				}
				return
			}
			col := tbl.Column(names[len(names)-1])
			m, masked := g.Masks[names[len(names)-1]]
			if col == nil || !masked {
				return
			}
			e, _ := maskExpr(m, col, copyColumnRef(path[len(path)-1]))
			want := exprSQL(e)
			for _, up := range path {
				if exprSQL(up) == want {
					return
				}
			}
			fail("%s.%s read unmasked", name, col.Name)
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Message() == nil || fd.IsMap() {
				return true
			}
			if fd.IsList() {
				for i := 0; i < v.List().Len(); i++ {
					visit(v.List().Get(i).Message())
				}
				return true
			}
			visit(v.Message())
			return true
		})
	}
	visit(sel.ProtoReflect())
	return rv, failure
}

// statisticsHidden checks a derived table over pg_class: every row, every
// column as it is except the planner statistics, which are constants.
func statisticsHidden(sel *pgSelectStmt, tbl *Table, alias string) error {
	if sel.WhereClause != nil || len(sel.TargetList) != len(tbl.Columns) {
		return fmt.Errorf("%s wrapped with a filter or other columns", tbl.QualifiedName())
	}
	for i, c := range tbl.Columns {
		want := exprSQL(columnRef(alias, c.Name))
		if v, hidden := statisticsColumns[c.Name]; hidden {
			want = exprSQL(cast(intConst(v), copyTypeName(c.typeName)))
		}
		rt := sel.TargetList[i].GetResTarget()
		if got := exprSQL(rt.GetVal()); got != want {
			return fmt.Errorf("%s.%s is %s, want %s", tbl.QualifiedName(), c.Name, got, want)
		}
		if _, hidden := statisticsColumns[c.Name]; hidden && rt.GetName() != c.Name {
			return fmt.Errorf("%s.%s hidden under another name %q", tbl.QualifiedName(), c.Name, rt.GetName())
		}
	}
	return nil
}

func exprSQL(n *pgNode) string {
	s, err := deparse(&pgNode{Node: &pgNodeSelectStmt{SelectStmt: &pgSelectStmt{
		TargetList: []*pgNode{resTarget("", n)}, LimitOption: pgLimitOptionLIMITOPTIONDEFAULT, Op: pgSetOperationSETOPNONE,
	}}})
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

// writeGuard checks the guards of a write to a protected relation: the
// reach filter among the WHERE's conjuncts (UPDATE, DELETE, ON CONFLICT DO
// UPDATE), and mandate.deny_unless over the new row wherever new values
// the write filter reads are produced (INSERT source, SET, COPY FROM). It
// returns the target when it is protected and guarded.
func writeGuard(stmt any, cat *Catalog, sess Session, o *Options, set *grant.Set) (*pgRangeVar, error) {
	var rv *pgRangeVar
	switch x := stmt.(type) {
	case *pgInsertStmt:
		rv = x.Relation
	case *pgUpdateStmt:
		rv = x.Relation
	case *pgDeleteStmt:
		rv = x.Relation
	case *pgCopyStmt:
		if !x.IsFrom || x.Relation == nil {
			return nil, nil
		}
		rv = x.Relation
	}
	if rv == nil {
		return nil, nil
	}
	tbl := cat.lookupRelation(sess, rv.Schemaname, rv.Relname)
	if tbl == nil || !o.protected(tbl) {
		return nil, nil
	}
	name := tbl.QualifiedName()
	g := set.Lookup(name)
	refname := rv.Relname
	if rv.Alias != nil {
		refname = rv.Alias.Aliasname
	}
	reached := func(where *pgNode, a grant.Action) error {
		if !g.Can(a) {
			return fmt.Errorf("%s written without %s permission", name, a)
		}
		have := map[string]bool{}
		for _, c := range conjuncts(where) {
			have[exprSQL(c)] = true
		}
		for _, reads := range []bool{false, true} {
			f := reach(&writeTarget{reads: reads}, g, a)
			if f == grant.True {
				return nil
			}
			n, err := filterExpr(f, tbl, func(c string) *pgNode { return columnRef(refname, c) })
			if err != nil {
				return err
			}
			ok := true
			for _, c := range conjuncts(n) {
				ok = ok && have[exprSQL(c)]
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("%s %s without its filter: WHERE %s", a, name, exprSQL(where))
	}
	switch x := stmt.(type) {
	case *pgDeleteStmt:
		return rv, reached(x.WhereClause, grant.Delete)
	case *pgUpdateStmt:
		if err := reached(x.WhereClause, grant.Update); err != nil {
			return nil, err
		}
		return rv, checkedSet(x.TargetList, tbl, refname, g)
	case *pgCopyStmt:
		f := check(g, grant.Insert)
		if f == nil {
			return rv, nil
		}
		want, err := denyUnless(f, tbl, func(c string) *pgNode { return columnRef(c) })
		if err != nil {
			return nil, err
		}
		where := x.WhereClause
		if ce := where.GetCaseExpr(); ce != nil && len(ce.Args) == 1 {
			where = ce.Args[0].GetCaseWhen().GetResult()
		}
		if exprSQL(where) != exprSQL(want) {
			return nil, fmt.Errorf("COPY FROM into %s without its check: WHERE %s", name, exprSQL(x.WhereClause))
		}
		return rv, nil
	case *pgInsertStmt:
		if !g.Can(grant.Insert) {
			return nil, fmt.Errorf("%s inserted into without insert permission", name)
		}
		if f := check(g, grant.Insert); f != nil {
			sel := x.SelectStmt.GetSelectStmt()
			if sel == nil || len(sel.FromClause) != 1 || sel.FromClause[0].GetRangeSubselect() == nil {
				return nil, fmt.Errorf("INSERT into %s without its check", name)
			}
			alias := sel.FromClause[0].GetRangeSubselect().GetAlias().GetAliasname()
			want, err := denyUnless(f, tbl, func(c string) *pgNode { return checkedValue(alias, tbl.Column(c)) })
			if err != nil {
				return nil, err
			}
			if exprSQL(sel.WhereClause) != exprSQL(want) {
				return nil, fmt.Errorf("INSERT into %s without its check: WHERE %s", name, exprSQL(sel.WhereClause))
			}
			for i, t := range sel.TargetList {
				cols := x.Cols
				if i >= len(cols) || exprSQL(t.GetResTarget().GetVal()) != exprSQL(columnRef(alias, cols[i].GetResTarget().GetName())) {
					return nil, fmt.Errorf("INSERT into %s stores values it did not check", name)
				}
			}
		}
		if oc := x.OnConflictClause; oc != nil && oc.Action == pgOnConflictUpdate {
			if err := reached(oc.WhereClause, grant.Update); err != nil {
				return nil, err
			}
			if err := checkedSet(oc.TargetList, tbl, refname, g); err != nil {
				return nil, err
			}
		}
		return rv, nil
	}
	return nil, nil
}

// checkedSet checks that every column the update filter reads is assigned
// through a sub-select guarded by deny_unless over the new row.
func checkedSet(list []*pgNode, tbl *Table, refname string, g *grant.Relation) error {
	f := check(g, grant.Update)
	if f == nil {
		return nil
	}
	reads := map[string]bool{}
	for _, c := range grant.Columns(f) {
		reads[c] = true
	}
	for _, n := range list {
		rt := n.GetResTarget()
		if !reads[rt.GetName()] {
			continue
		}
		val := rt.GetVal()
		if m := val.GetMultiAssignRef(); m != nil {
			val = m.Source
		}
		sub := val.GetSubLink().GetSubselect().GetSelectStmt()
		if sub == nil || len(sub.FromClause) != 1 || sub.FromClause[0].GetRangeSubselect() == nil {
			return fmt.Errorf("UPDATE of %s.%s without its check", tbl.QualifiedName(), rt.GetName())
		}
		a := sub.FromClause[0].GetRangeSubselect().GetAlias()
		assigned := map[string]bool{}
		for _, c := range a.GetColnames() {
			assigned[c.GetString_().GetSval()] = true
		}
		want, err := denyUnless(f, tbl, func(c string) *pgNode {
			if assigned[c] {
				return checkedValue(a.GetAliasname(), tbl.Column(c))
			}
			return columnRef(refname, c)
		})
		if err != nil {
			return err
		}
		if exprSQL(sub.WhereClause) != exprSQL(want) {
			return fmt.Errorf("UPDATE of %s.%s without its check: %s", tbl.QualifiedName(), rt.GetName(), exprSQL(sub.WhereClause))
		}
	}
	return nil
}

// conjuncts flattens nested ANDs.
func conjuncts(n *pgNode) []*pgNode {
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pgBoolExprTypeANDEXPR {
		var out []*pgNode
		for _, a := range b.Args {
			out = append(out, conjuncts(a)...)
		}
		return out
	}
	if n == nil {
		return nil
	}
	return []*pgNode{n}
}

// TestSpliceMatchesDeparse: for every golden input, the spliced output
// (original text, changed spans only) means exactly what deparsing the
// whole rewritten tree gives, and splicing is really taken for most reads.
func TestSpliceMatchesDeparse(t *testing.T) {
	cat := testCatalog(t)
	sets := scenarios()
	spliced := 0
	for _, c := range loadCases(t) {
		stmts, err := Parse(c.input)
		if err != nil {
			continue
		}
		opts := testOptions()
		got, err := Rewrite(stmts, cat, c.sess, &setSource{set: sets[c.scenario]}, opts)
		if err != nil {
			continue
		}
		opts.deparseAll = true
		want, err := Rewrite(stmts, cat, c.sess, &setSource{set: sets[c.scenario]}, opts)
		if err != nil {
			t.Fatalf("%s: deparse path fails where splice succeeded: %v", c.dir, err)
		}
		if g, w := normalize(t, got.SQL), normalize(t, want.SQL); g != w {
			t.Errorf("%s: splice and deparse differ\nsplice:  %s\ndeparse: %s", c.dir, g, w)
		}
		if got.SQL != want.SQL {
			spliced++
		}
	}
	if spliced < 20 {
		t.Errorf("only %d golden cases took the splice path", spliced)
	}
}

// TestDerivedCacheIsTransparent: with a derived-table cache shared by every
// golden case (each rewritten twice, so the second hits), the output is
// byte for byte what the uncached rewriter gives.
func TestDerivedCacheIsTransparent(t *testing.T) {
	cat := testCatalog(t)
	sets := scenarios()
	cache := &DerivedCache{}
	hits := 0
	for _, c := range loadCases(t) {
		stmts, err := Parse(c.input)
		if err != nil {
			continue
		}
		// Spliced, and deparsed whole (deparseAround takes each derived
		// table's text from the cache too).
		for _, whole := range []bool{false, true} {
			opts := testOptions()
			opts.deparseAll = whole
			want, err := Rewrite(stmts, cat, c.sess, &setSource{set: sets[c.scenario]}, opts)
			if err != nil {
				continue
			}
			for range 2 {
				opts.Derived = cache
				got, err := Rewrite(stmts, cat, c.sess, &setSource{set: sets[c.scenario]}, opts)
				if err != nil || got.SQL != want.SQL {
					t.Fatalf("%s (deparsed whole: %v): with the cache: %v\n got %s\nwant %s", c.dir, whole, err, got.SQL, want.SQL)
				}
			}
			hits++
		}
	}
	if hits < 20 || len(cache.entries) == 0 {
		t.Errorf("cache exercised by %d cases, %d entries", hits, len(cache.entries))
	}
}

// pushedShape reports whether n is a conjunct pushdown.go copies into a
// derived table reading its relation as alias: alias.col compared with
// literals, parameters or casts of them, or an AND or OR of such (IN and
// BETWEEN written out).
func pushedShape(n *pgNode, alias string) bool {
	if b := n.GetBoolExpr(); b != nil && b.Boolop != pgBoolExprTypeNOTEXPR {
		return !slices.ContainsFunc(b.Args, func(a *pgNode) bool { return !pushedShape(a, alias) })
	}
	e := n.GetAExpr()
	if e == nil {
		return false
	}
	isCol := func(n *pgNode) bool {
		f := n.GetColumnRef().GetFields()
		return len(f) == 2 && f[0].GetString_().GetSval() == alias
	}
	var isConst func(n *pgNode) bool
	isConst = func(n *pgNode) bool {
		switch {
		case n.GetAConst() != nil, n.GetParamRef() != nil:
			return true
		case n.GetTypeCast() != nil:
			return isConst(n.GetTypeCast().Arg)
		}
		return false
	}
	if items := e.Rexpr.GetList().GetItems(); items != nil {
		return isCol(e.Lexpr) && !slices.ContainsFunc(items, func(n *pgNode) bool { return !isConst(n) })
	}
	return isCol(e.Lexpr) && isConst(e.Rexpr) || isConst(e.Lexpr) && isCol(e.Rexpr)
}
