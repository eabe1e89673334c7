package rewrite

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// A simple query carries its constants in its text, so PostgreSQL parses,
// analyses and plans every instance of a template anew, and a rewrite
// (filters, masks) makes each of those dearer. Prepared gives the proxy the
// template as a statement to prepare once, with the instance's integers
// where they are compared as parameters, so that later instances cost a
// Bind.
//
// A parameter must mean what the literal meant, and must not run where the
// literal would not have run:
//   - Its type is the literal's: an integer literal is an int4 constant
//     (the scanner makes larger ones numeric strings); every implicit cast
//     from int4 (to int8, float4, float8, numeric, the oid types) is exact
//     and cannot fail.
//   - It stands only as the operand compared with a column (col = 42, IN,
//     BETWEEN) or as a LIMIT or OFFSET. Elsewhere it would turn a constant
//     expression (1/0, 100000::int2, 1/(CASE WHEN 1 = 1 THEN 0 END)),
//     which PostgreSQL folds once when it plans the literal form, whatever
//     the rows, into one a generic plan evaluates per row, where it could
//     fail on rows the filter hides (the rewriter's fence assumes
//     constants are folded) or answer otherwise. Such literals stay in
//     the text.
//   - Where a constant itself matters, a parameter would change the
//     statement, so a template with an integer literal there is never
//     prepared: ORDER BY, GROUP BY and DISTINCT ON (an integer there is a
//     column's position, and an expression there is matched against the
//     select list by equality, which two parameters never have); window
//     definitions and aggregates' ORDER BY, for the same matching; type
//     names (varchar(10)); ON CONFLICT, whose target is matched against
//     index expressions and predicates; SELECT INTO.
// A statement that already has a parameter ($1 in a simple query is an
// error) is never prepared.

// Prepared is a template's instance as a statement with parameters.
type Prepared struct {
	SQL    string   // the rewrite, its numeric literals $1, $2, …
	OIDs   []uint32 // each parameter's type (shared between instances: read only)
	Values [][]byte // each parameter's value, as text
}

// oidInt4 is PostgreSQL's type OID of int4, an integer literal's type.
const oidInt4 = 23

// paramForm is a template's text with parameters in place of its compared
// integers.
type paramForm struct {
	param []int    // for each literal of the statement: its parameter (1-based), 0 when kept inline
	order []int    // the literal each parameter takes its value from
	oids  []uint32 // the parameters' types, all int4; shared, never written
	sql   string   // the text, when no literal is kept inline
}

// Prepare returns the template's instance sql (whose literals l are) as a
// statement with parameters; ok is false when the template cannot be
// prepared or the instance spells an integer otherwise than in decimal
// digits (0x1F, 1_000).
func (t *Template) Prepare(sql string, l Literals) (p Prepared, ok bool) {
	t.formOnce.Do(func() { t.form = newParamForm(t, sql, l) })
	f := t.form
	if f == nil || len(l.spans) != len(f.param) {
		return Prepared{}, false
	}
	p.OIDs = f.oids
	p.Values = make([][]byte, len(f.order))
	for i, k := range f.order {
		text := sql[l.spans[k][0]:l.spans[k][1]]
		if strings.Trim(text, "0123456789") != "" {
			return Prepared{}, false
		}
		p.Values[i] = []byte(text)
	}
	if p.SQL = f.sql; p.SQL == "" {
		p.SQL = f.text(t, sql, l)
	}
	return p, true
}

// newParamForm decides, from one instance, where t's parameters go; nil
// when it has none or a numeric literal stands where a parameter would
// change the statement.
func newParamForm(t *Template, sql string, l Literals) *paramForm {
	stmts, err := Parse(sql)
	if err != nil || stmts.Len() != 1 {
		return nil
	}
	consts := map[int32]constUse{}
	if !markConsts(stmts.tree.Stmts[0].Stmt.ProtoReflect(), useInline, consts) {
		return nil
	}
	f := &paramForm{param: make([]int, len(l.spans))}
	inline, params := false, make([]bool, len(l.spans))
	for k, sp := range l.spans {
		if l.kinds[k] != 'i' && l.kinds[k] != 'f' && l.kinds[k] != 'g' {
			inline = true
			continue
		}
		use, found := consts[int32(sp[0])]
		// A negative number: the parser folds each minus sign into the
		// constant, which then starts at the sign.
		for j := sp[0] - 1; !found && j >= 0 && strings.IndexByte(" \t\r\n\f\v-", sql[j]) >= 0; j-- {
			if sql[j] == '-' {
				use, found = consts[int32(j)]
			}
		}
		switch {
		case !found || use == usePinned:
			return nil
		case use == useParam && l.kinds[k] == 'i':
			params[k] = true
		default:
			inline = true
		}
	}
	for _, k := range t.slots {
		if params[k] && f.param[k] == 0 {
			f.order = append(f.order, k)
			f.param[k] = len(f.order)
		}
	}
	if len(f.order) == 0 {
		return nil
	}
	f.oids = make([]uint32, len(f.order))
	for i := range f.oids {
		f.oids[i] = oidInt4
	}
	if !inline {
		f.sql = f.text(t, sql, l)
	}
	return f
}

// text is t's output for the instance sql, with f's parameters.
func (f *paramForm) text(t *Template, sql string, l Literals) string {
	var b strings.Builder
	for i, part := range t.parts {
		b.WriteString(part)
		if i < len(t.slots) {
			k := t.slots[i]
			if n := f.param[k]; n > 0 {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(n))
			} else {
				b.WriteString(sql[l.spans[k][0]:l.spans[k][1]])
			}
		}
	}
	return b.String()
}

// constUse is what a constant may become in the prepared form.
type constUse uint8

const (
	useInline constUse = iota // stays in the text
	useParam                  // a parameter: compared, or a LIMIT or OFFSET
	usePinned                 // more than a value: the statement is not prepared
)

// pinningNodes are the parse nodes under which a constant is more than a
// value (see the comment at the top), and pinningFields the fields.
var (
	pinningNodes  = map[protoreflect.Name]bool{"SortBy": true, "WindowDef": true, "GroupingSet": true, "TypeName": true, "OnConflictClause": true, "IntoClause": true, "IndexElem": true}
	pinningFields = map[protoreflect.Name]bool{"group_clause": true, "distinct_clause": true, "into_clause": true, "on_conflict_clause": true}
	limitFields   = map[protoreflect.Name]bool{"limit_count": true, "limit_offset": true}
	comparisons   = map[string]bool{"=": true, "<>": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true}
)

// markConsts records the location of every A_Const under m and what it
// may become, given use, what m's parent allows; false when m holds a
// parameter reference. A constant is a parameter only as m's direct
// operand: the Node and List wrappers pass use on, any other node
// inlines what is below it.
func markConsts(m protoreflect.Message, use constUse, into map[int32]constUse) bool {
	name := m.Descriptor().Name()
	switch {
	case name == "ParamRef":
		return false
	case name == "A_Const":
		if c, ok := m.Interface().(*pgAConst); ok && c.Location >= 0 {
			if prev, seen := into[c.Location]; !seen || prev < use {
				into[c.Location] = use
			}
		}
		return true
	case pinningNodes[name]:
		use = usePinned
	case name != "Node" && name != "List" && use != usePinned:
		use = useInline
	}
	var compared *pgAExpr
	if name == "A_Expr" && comparedOperands(m.Interface().(*pgAExpr)) {
		compared = m.Interface().(*pgAExpr)
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		u := use
		switch {
		case pinningFields[fd.Name()]:
			u = usePinned
		case u == usePinned:
		case compared != nil && fd.Name() == "rexpr" && compared.Lexpr.GetColumnRef() != nil,
			compared != nil && fd.Name() == "lexpr" && compared.Rexpr.GetColumnRef() != nil,
			limitFields[fd.Name()]:
			u = useParam
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len() && ok; i++ {
				ok = markConsts(list.Get(i).Message(), u, into)
			}
		case fd.Message() != nil && !fd.IsMap():
			ok = markConsts(v.Message(), u, into)
		}
		return ok
	})
	return ok
}

// comparedOperands reports whether e compares its operands with a
// built-in comparison (IN and BETWEEN included): an operand's only use;
// markConsts makes a parameter of one only when the other is a column.
func comparedOperands(e *pgAExpr) bool {
	switch e.Kind {
	case pgAExprKindAEXPRIN, pgAExprKindAEXPRBETWEEN, pgAExprKindAEXPRNOTBETWEEN,
		pgAExprKindAEXPRBETWEENSYM, pgAExprKindAEXPRNOTBETWEENSYM:
		return true
	case pgAExprKindAEXPROP:
		if len(e.Name) != 1 {
			return false // OPERATOR(schema.op)
		}
		s := e.Name[0].GetString_()
		return s != nil && comparisons[s.Sval]
	}
	return false
}
