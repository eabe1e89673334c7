package rewrite

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mandate-proxy/mandate/grant"
)

var update = flag.Bool("update", false, "rewrite the expected files of golden tests")

// goldenCase is one directory under testdata: input.sql; optional "grants"
// (a scenario of helpers_test.go, default alice) and "session" (lines
// search_path=a,b / temp=pg_temp_3 / user=u); expected.sql, or "error"
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
	if e := os.WriteFile(sqlFile, []byte(res.SQL+"\n"), 0o644); e != nil {
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
	g := set.Lookup(tbl.QualifiedName())
	if !g.Can(grant.Select) {
		return nil, fmt.Errorf("%s wrapped without select permission", tbl.QualifiedName())
	}
	got := "true"
	if sel.WhereClause != nil {
		got = exprSQL(sel.WhereClause)
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
		ok = ok || want == got
	}
	if !ok {
		return nil, fmt.Errorf("%s wrapped with filter %s", tbl.QualifiedName(), got)
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

func exprSQL(n *pgNode) string {
	s, err := deparse(&pgNode{Node: &pgNodeSelectStmt{SelectStmt: &pgSelectStmt{
		TargetList: []*pgNode{resTarget("", n)}, LimitOption: pgLimitOptionLIMITOPTIONDEFAULT, Op: pgSetOperationSETOPNONE,
	}}})
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

func visitMessages(m protoreflect.Message, fn func(protoreflect.Message) bool) {
	if !fn(m) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				visitMessages(v.List().Get(i).Message(), fn)
			}
			return true
		}
		visitMessages(v.Message(), fn)
		return true
	})
}
