package policy

// FuzzResidualAgreesWithCedar attacks the residual → grant.Expr translator
// (cedar.go): for a random policy over a small table and a random concrete
// row, the row predicate the engine computes (principal known, row unknown),
// evaluated with SQL's three-valued logic, must agree with Cedar's own
// decision for that row.
//
//   - predicate TRUE and Cedar Deny is never accepted (the unsafe direction);
//   - Cedar Allow and predicate not TRUE is accepted only when the engine
//     failed closed (a residual it could not translate, named in the grant's
//     Reason or leaving the filter False), or when Cedar itself hit an
//     evaluation error (a missing attribute): Cedar skips an erroring forbid,
//     where SQL's NULL drops the row — the documented conservative choice.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/mandate-proxy/mandate/grant"
)

const fuzzSchema = `
entity User = {
  level: Long,
  name: String,
  admin: Bool,
  tag?: Long,
};

@table("public.t")
entity Row = {
  n: Long,
  m: Long,
  s: String,
  b: Bool,
  o?: Long,
  os?: String,
};

action "select", "insert", "update", "delete" appliesTo {
  principal: [User],
  resource: [Row],
};
`

var fuzzRel = RelationInfo{Name: "public.t", Columns: []ColumnInfo{
	{Name: "n", Type: "bigint"}, {Name: "m", Type: "bigint"}, {Name: "s", Type: "text"}, {Name: "b", Type: "boolean"}, {Name: "o", Type: "bigint"}, {Name: "os", Type: "text"},
}}

// fuzzBytes hands out the fuzzer's bytes; exhausted, it yields zeros.
type fuzzBytes struct {
	b []byte
	i int
}

func (r *fuzzBytes) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *fuzzBytes) pick(n int) int { return int(r.next()) % n }
func (r *fuzzBytes) small() int64   { return int64(r.pick(7)) - 3 } // -3..3

var fuzzStrings = []string{"a", "b", "", "ab"}
var fuzzOps = []string{"==", "!=", "<", "<=", ">", ">="}

func (r *fuzzBytes) str() string  { return fuzzStrings[r.pick(len(fuzzStrings))] }
func (r *fuzzBytes) eqOp() string { return fuzzOps[r.pick(2)] }
func (r *fuzzBytes) op() string   { return fuzzOps[r.pick(len(fuzzOps))] }

// cond generates a boolean Cedar expression over resource, principal and
// constants.
func (r *fuzzBytes) cond(depth int) string {
	k := r.pick(20)
	if depth <= 0 && k >= 14 {
		k %= 14
	}
	switch k {
	case 0:
		if r.pick(2) == 0 {
			return fmt.Sprintf("resource.n %s %d", r.op(), r.small())
		}
		return fmt.Sprintf("%d %s resource.m", r.small(), r.op())
	case 1:
		return fmt.Sprintf("resource.n %s resource.m", r.op())
	case 2:
		return fmt.Sprintf("resource.s %s %q", r.eqOp(), r.str())
	case 3:
		switch r.pick(3) {
		case 0:
			return "resource.b"
		case 1:
			return fmt.Sprintf("resource.b %s %v", r.eqOp(), r.pick(2) == 0)
		}
		return "resource.b == principal.admin"
	case 4:
		return []string{"resource has o", "resource has os"}[r.pick(2)]
	case 5: // guarded optional column
		if r.pick(2) == 0 {
			return fmt.Sprintf("(resource has o && resource.o %s %d)", r.op(), r.small())
		}
		return fmt.Sprintf("(resource has os && resource.os %s %q)", r.eqOp(), r.str())
	case 6: // optional column guarded by if-then-else
		if r.pick(2) == 0 {
			return r.guard("o", fmt.Sprintf("resource.o %s %d", r.op(), r.small()))
		}
		return r.guard("os", fmt.Sprintf("resource.os %s %q", r.eqOp(), r.str()))
	case 7:
		switch r.pick(4) {
		case 0:
			return fmt.Sprintf("[%d, %d].contains(resource.n)", r.small(), r.small())
		case 1:
			return fmt.Sprintf("[%q, %q].contains(resource.s)", r.str(), r.str())
		case 2:
			return r.guard("o", fmt.Sprintf("[%d].contains(resource.o)", r.small()))
		}
		return fmt.Sprintf("[%d, %d, %d].contains(resource.m)", r.small(), r.small(), r.small())
	case 8:
		switch r.pick(3) {
		case 0:
			return fmt.Sprintf("resource.n %s principal.level", r.op())
		case 1:
			return fmt.Sprintf("principal.level %s resource.m", r.op())
		}
		return fmt.Sprintf("resource.s %s principal.name", r.eqOp())
	case 9:
		switch r.pick(3) {
		case 0:
			return fmt.Sprintf("principal.level %s %d", r.op(), r.small())
		case 1:
			return "principal.admin"
		}
		return []string{"true", "false"}[r.pick(2)]
	case 10: // arithmetic over a column: the translator must fail closed
		return fmt.Sprintf("resource.n + %d %s %d", r.small(), r.op(), r.small())
	case 11:
		return fmt.Sprintf("(principal has tag && resource.n %s principal.tag)", r.op())
	case 12:
		return r.guard("o", fmt.Sprintf("resource.o %s resource.n", r.op()))
	case 13:
		return r.guard("os", fmt.Sprintf("resource.s %s resource.os", r.eqOp()))
	case 14, 15:
		return fmt.Sprintf("(%s && %s)", r.cond(depth-1), r.cond(depth-1))
	case 16, 17:
		return fmt.Sprintf("(%s || %s)", r.cond(depth-1), r.cond(depth-1))
	case 18:
		return fmt.Sprintf("!(%s)", r.cond(depth-1))
	}
	return fmt.Sprintf("(if %s then %s else %s)", r.cond(depth-1), r.cond(depth-1), r.cond(depth-1))
}

// guard protects an access to an optional column, which the validator
// otherwise rejects; rarely it leaves the access unguarded, to check that
// the engine still rejects such policies.
func (r *fuzzBytes) guard(col, x string) string {
	switch r.pick(8) {
	case 0:
		return x
	case 1, 2, 3:
		return fmt.Sprintf("(if resource has %s then %s else %v)", col, x, r.pick(2) == 0)
	}
	return fmt.Sprintf("(resource has %s && %s)", col, x)
}

// policies generates one to three policies: permits and maybe a forbid.
func (r *fuzzBytes) policies() string {
	var b strings.Builder
	n := 1 + r.pick(3)
	for i := range n {
		effect := "permit"
		if i > 0 && r.pick(2) == 0 {
			effect = "forbid"
		}
		res := []string{"resource", "resource is Row"}[r.pick(2)]
		fmt.Fprintf(&b, "@id(\"p%d\")\n%s (principal, action == Action::\"select\", %s)\nwhen { %s }", i, effect, res, r.cond(3))
		if r.pick(4) == 0 {
			fmt.Fprintf(&b, "\nunless { %s }", r.cond(1))
		}
		b.WriteString(";\n")
	}
	return b.String()
}

// fuzzRow is a concrete row (and principal); nil is SQL NULL / a missing
// optional attribute.
type fuzzRow map[string]any

func (r *fuzzBytes) row() fuzzRow {
	row := fuzzRow{"n": r.small(), "m": r.small(), "s": r.str(), "b": r.pick(2) == 0, "o": nil, "os": nil}
	if r.pick(3) != 0 {
		row["o"] = r.small()
	}
	if r.pick(3) != 0 {
		row["os"] = r.str()
	}
	return row
}

func (r *fuzzBytes) user() (types.RecordMap, string) {
	m := types.RecordMap{
		"level": types.Long(r.small()),
		"name":  types.String(r.str()),
		"admin": types.Boolean(r.pick(2) == 0),
	}
	js := fmt.Sprintf(`{"level": %d, "name": %q, "admin": %v`, m["level"], string(m["name"].(types.String)), m["admin"])
	if r.pick(2) == 0 {
		t := r.small()
		m["tag"] = types.Long(t)
		js += fmt.Sprintf(`, "tag": %d`, t)
	}
	return m, js + "}"
}

// tri is a three-valued SQL truth value.
type tri int

const (
	triFalse tri = iota
	triNull
	triTrue
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// sqlEval evaluates e on row as PostgreSQL would evaluate the rewriter's SQL.
// A type mismatch would be an SQL error (the statement fails: no rows); it
// is reported as an error.
func sqlEval(e grant.Expr, row fuzzRow) (tri, error) {
	switch e := e.(type) {
	case grant.Bool:
		return triOf(bool(e)), nil
	case grant.And:
		out := triTrue
		for _, t := range e.Terms {
			v, err := sqlEval(t, row)
			if err != nil {
				return 0, err
			}
			out = min(out, v)
		}
		return out, nil
	case grant.Or:
		out := triFalse
		for _, t := range e.Terms {
			v, err := sqlEval(t, row)
			if err != nil {
				return 0, err
			}
			out = max(out, v)
		}
		return out, nil
	case grant.Not:
		v, err := sqlEval(e.X, row)
		return triTrue - v, err
	case grant.NotNull:
		v, ok := row[e.Column]
		if !ok {
			return 0, fmt.Errorf("unknown column %q", e.Column)
		}
		return triOf(v != nil), nil
	case grant.In:
		v, ok := row[e.Column]
		if !ok {
			return 0, fmt.Errorf("unknown column %q", e.Column)
		}
		if len(e.Values) == 0 {
			return triFalse, nil
		}
		if v == nil {
			return triNull, nil
		}
		for _, l := range e.Values {
			c, err := sqlCompare(grant.Eq, v, l)
			if err != nil {
				return 0, err
			}
			if c == triTrue {
				return triTrue, nil
			}
		}
		return triFalse, nil
	case grant.Compare:
		l, err := sqlOperand(e.Left, row)
		if err != nil {
			return 0, err
		}
		r, err := sqlOperand(e.Right, row)
		if err != nil {
			return 0, err
		}
		if l == nil || r == nil {
			return triNull, nil
		}
		return sqlCompare(e.Op, l, r)
	}
	return 0, fmt.Errorf("unknown expression %T", e)
}

func sqlOperand(o grant.Operand, row fuzzRow) (any, error) {
	switch o := o.(type) {
	case grant.Column:
		v, ok := row[o.Name]
		if !ok {
			return nil, fmt.Errorf("unknown column %q", o.Name)
		}
		return v, nil
	case grant.Literal:
		if o.Type != "" {
			return nil, fmt.Errorf("unexpected typed literal %v::%s", o.V, o.Type)
		}
		return o.V, nil
	}
	return nil, fmt.Errorf("unknown operand %T", o)
}

func sqlCompare(op grant.CmpOp, l, r any) (tri, error) {
	if lit, ok := r.(grant.Literal); ok {
		r = lit.V
	}
	var c int
	switch l := l.(type) {
	case int64:
		r, ok := r.(int64)
		if !ok {
			return 0, fmt.Errorf("bigint %s %T", op, r)
		}
		c = cmpInt(l, r)
	case string:
		r, ok := r.(string)
		if !ok {
			return 0, fmt.Errorf("text %s %T", op, r)
		}
		c = strings.Compare(l, r)
	case bool:
		r, ok := r.(bool)
		if !ok {
			return 0, fmt.Errorf("boolean %s %T", op, r)
		}
		c = cmpInt(b2i(l), b2i(r))
	default:
		return 0, fmt.Errorf("operand of type %T", l)
	}
	switch op {
	case grant.Eq:
		return triOf(c == 0), nil
	case grant.Ne:
		return triOf(c != 0), nil
	case grant.Lt:
		return triOf(c < 0), nil
	case grant.Le:
		return triOf(c <= 0), nil
	case grant.Gt:
		return triOf(c > 0), nil
	case grant.Ge:
		return triOf(c >= 0), nil
	}
	return 0, fmt.Errorf("unknown operator %q", op)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func cedarRow(row fuzzRow) types.Record {
	m := types.RecordMap{}
	for k, v := range row {
		switch v := v.(type) {
		case int64:
			m[types.String(k)] = types.Long(v)
		case string:
			m[types.String(k)] = types.String(v)
		case bool:
			m[types.String(k)] = types.Boolean(v)
		}
	}
	return types.NewRecord(m)
}

func FuzzResidualAgreesWithCedar(f *testing.F) {
	seeds := [][]byte{
		{0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8},
		{1, 0, 14, 0, 0, 3, 16, 6, 1, 2, 0, 9, 9, 1, 0, 1, 0, 1},
		{2, 1, 17, 6, 0, 2, 0, 0, 3, 1, 1, 0, 2, 1, 1, 4, 5, 6},
		{2, 1, 1, 19, 4, 0, 5, 0, 3, 2, 7, 0, 1, 2, 0, 2, 1, 0, 3},
		{0, 1, 18, 15, 5, 0, 2, 3, 8, 0, 4, 1, 3, 0, 0, 5, 1},
		{0, 0, 10, 1, 2, 3, 7, 1, 0, 0, 2, 3, 1, 1, 0, 0, 0, 1},
		{1, 0, 16, 6, 0, 1, 3, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2},
		{2, 0, 0, 11, 2, 1, 16, 13, 1, 7, 2, 5, 0, 6, 1, 2, 3, 4},
		{1, 1, 19, 12, 3, 16, 4, 1, 7, 3, 1, 2, 0, 3, 2, 1, 0, 1, 0},
		{2, 1, 0, 18, 17, 6, 1, 3, 3, 2, 3, 0, 0, 0, 2, 1, 2, 2, 1, 0, 2, 1},
		{0, 0, 3, 9, 1, 2, 0, 1, 0},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	dir := f.TempDir()
	schemaFile := filepath.Join(dir, "schema.cedarschema")
	if err := os.WriteFile(schemaFile, []byte(fuzzSchema), 0o644); err != nil {
		f.Fatal(err)
	}
	var seq int
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzBytes{b: data}
		policies := r.policies()
		userAttrs, userJSON := r.user()
		row := r.row()

		// The real engine, loaded from files like production.
		seq++
		d := filepath.Join(dir, fmt.Sprint(seq))
		src := Sources{PolicyDir: filepath.Join(d, "policies"), Schema: schemaFile, Entities: filepath.Join(d, "entities.json")}
		if err := os.MkdirAll(src.PolicyDir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(d)
		must(t, os.WriteFile(filepath.Join(src.PolicyDir, "p.cedar"), []byte(policies), 0o644))
		must(t, os.WriteFile(src.Entities, []byte(`[{"uid": {"type": "User", "id": "u"}, "attrs": `+userJSON+`, "parents": []}]`), 0o644))
		e, err := Open(src, Options{})
		if err != nil {
			// The validator rejects ill-typed or unsafe policies (e.g. an
			// unguarded optional attribute); the engine never sees them.
			t.Skipf("rejected by the engine: %v", err)
		}
		scope := Scope{Subject: "u"}
		g, err := e.Grants(scope, fuzzRel)
		if err != nil {
			t.Fatal(err)
		}
		pred := g.RowFilter(grant.Select)
		got, sqlErr := sqlEval(pred, row)
		keeps := sqlErr == nil && got == triTrue

		// Cedar's own answer for the concrete row, with the same context.
		ev, err := e.prepare(e.Snapshot(), &scope)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := cedar.NewPolicySetFromBytes("p.cedar", []byte(policies))
		if err != nil {
			t.Fatal(err)
		}
		principal := types.NewEntityUID("User", "u")
		resource := types.NewEntityUID("Row", "r")
		ents := types.EntityMap{
			principal: {UID: principal, Parents: types.NewEntityUIDSet(), Attributes: types.NewRecord(userAttrs)},
			resource:  {UID: resource, Parents: types.NewEntityUIDSet(), Attributes: cedarRow(row)},
		}
		dec, diag := cedar.Authorize(ps, ents, cedar.Request{
			Principal: principal,
			Action:    types.NewEntityUID("Action", "select"),
			Resource:  resource,
			Context:   ev.record,
		})
		allowed := dec == cedar.Allow

		report := func(what string) {
			t.Fatalf("%s\npolicies:\n%s\nuser: %s\nrow: %v\npredicate: %s (sql: %v, err: %v)\ncedar: %v %+v\nreason: %s",
				what, policies, userJSON, row, grant.Format(pred), got, sqlErr, dec, diag, g.Reason)
		}
		if sqlErr != nil {
			report("predicate is not valid SQL for the row")
		}
		t.Logf("outcome: keeps=%v allowed=%v failedClosed=%v cedarErrors=%d", keeps, allowed, strings.Contains(g.Reason, "failed closed") || translationFailed(e.Snapshot(), ev, fuzzRel), len(diag.Errors))
		switch {
		case keeps && !allowed:
			report("UNSAFE: the predicate keeps a row Cedar denies")
		case allowed && !keeps:
			failedClosed := strings.Contains(g.Reason, "failed closed") || pred == grant.False || translationFailed(e.Snapshot(), ev, fuzzRel)
			if !failedClosed && len(diag.Errors) == 0 {
				report("the predicate drops a row Cedar allows, without failing closed")
			}
		}
	})
}

// translationFailed reports whether any policy's select residual could not be
// translated (the engine then fails closed for it, which Reason records
// only when the whole action ends up denied).
func translationFailed(snap *Snapshot, ev *evaluation, rel RelationInfo) bool {
	t := snap.schema.tables[rel.Name]
	row := &rowShape{table: t, columns: map[string]string{}}
	for _, c := range rel.Columns {
		row.columns[c.Name] = c.Type
	}
	req := ev.request(party{principal: types.NewEntityUID("User", "u")}, string(grant.Select), ev.record)
	for _, p := range snap.index[indexKey{string(grant.Select), rel.Name}] {
		if _, _, err := p.residual(req, row); err != nil {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
