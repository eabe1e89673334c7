package rewrite

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// A simple query carries its constants in its text, so PostgreSQL parses,
// analyses and plans every instance of a template anew, and a rewrite
// (filters, masks) makes each of those dearer. Prepared gives the proxy the
// template as a statement to prepare once, with the instance's numeric
// literals as parameters, so that later instances cost a Bind.
//
// A parameter must mean what the literal meant. It does when it has the
// type PostgreSQL gives the literal (integer: int4; a larger integer: int8;
// with a point or an exponent: numeric) and stands where an expression's
// value is all that counts. Where a constant itself matters, a parameter
// would change the statement, so a template with a numeric literal there
// is never prepared:
//   - ORDER BY, GROUP BY, DISTINCT ON: an integer there is a column's
//     position; and an expression there is matched against the select list
//     by equality, which two parameters never have;
//   - window definitions and aggregates' ORDER BY, for the same matching;
//   - type names (varchar(10)), where a constant is a type modifier;
//   - ON CONFLICT, whose target is matched against index expressions and
//     predicates; SELECT INTO, which is DDL.
// String, bit and hexadecimal literals stay in the text: an untyped string
// takes its type from its context, which a parameter does not. A statement
// that already has a parameter ($1 in a simple query is an error) is never
// prepared.

// Prepared is a template's instance as a statement with parameters.
type Prepared struct {
	SQL    string   // the rewrite, its numeric literals $1, $2, …
	OIDs   []uint32 // each parameter's type
	Values [][]byte // each parameter's value, as text
}

// PostgreSQL's type OIDs for numeric literals.
const (
	oidInt4    = 23
	oidInt8    = 20
	oidNumeric = 1700
)

// paramForm is a template's text with parameters in place of its numeric
// literals.
type paramForm struct {
	param []int  // for each literal of the statement: its parameter (1-based), 0 when kept inline
	order []int  // the literal each parameter takes its value from
	sql   string // the text, when no literal is kept inline
}

// Prepare returns the template's instance sql (whose literals l are) as a
// statement with parameters; ok is false when the template cannot be
// prepared or the instance spells a literal that has no exact parameter
// type (0x1F, 1_000, an integer beyond int8).
func (t *Template) Prepare(sql string, l Literals) (p Prepared, ok bool) {
	t.formOnce.Do(func() { t.form = newParamForm(t, sql, l) })
	f := t.form
	if f == nil || len(l.spans) != len(f.param) {
		return Prepared{}, false
	}
	p.OIDs = make([]uint32, len(f.order))
	p.Values = make([][]byte, len(f.order))
	for i, k := range f.order {
		text := sql[l.spans[k][0]:l.spans[k][1]]
		oid := literalType(l.kinds[k], text)
		if oid == 0 {
			return Prepared{}, false
		}
		p.OIDs[i], p.Values[i] = oid, []byte(text)
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
	consts := map[int32]bool{} // A_Const locations: pinned or not
	if !markConsts(stmts.tree.Stmts[0].Stmt.ProtoReflect(), false, consts) {
		return nil
	}
	f := &paramForm{param: make([]int, len(l.spans))}
	inline := false
	for k, sp := range l.spans {
		if l.kinds[k] != 'i' && l.kinds[k] != 'f' {
			inline = true
			continue
		}
		pinned, found := consts[int32(sp[0])]
		// A negative number: the parser folds each minus sign into the
		// constant, which then starts at the sign.
		for j := sp[0] - 1; !found && j >= 0 && strings.IndexByte(" \t\r\n\f\v-", sql[j]) >= 0; j-- {
			if sql[j] == '-' {
				pinned, found = consts[int32(j)]
			}
		}
		if !found || pinned {
			return nil
		}
	}
	for _, k := range t.slots {
		if l.kinds[k] == 'i' || l.kinds[k] == 'f' {
			if f.param[k] == 0 {
				f.order = append(f.order, k)
				f.param[k] = len(f.order)
			}
		}
	}
	if len(f.order) == 0 {
		return nil
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

// pinningNodes are the parse nodes under which a constant is more than a
// value (see the comment at the top), and pinningFields the fields.
var (
	pinningNodes  = map[protoreflect.Name]bool{"SortBy": true, "WindowDef": true, "GroupingSet": true, "TypeName": true, "OnConflictClause": true, "IntoClause": true, "IndexElem": true}
	pinningFields = map[protoreflect.Name]bool{"group_clause": true, "distinct_clause": true, "into_clause": true, "on_conflict_clause": true}
)

// markConsts records the location of every A_Const under m, and whether it
// is pinned; false when m holds a parameter reference.
func markConsts(m protoreflect.Message, pinned bool, into map[int32]bool) bool {
	name := m.Descriptor().Name()
	switch {
	case name == "ParamRef":
		return false
	case name == "A_Const":
		if c, ok := m.Interface().(*pgAConst); ok && c.Location >= 0 {
			into[c.Location] = into[c.Location] || pinned
		}
		return true
	case pinningNodes[name]:
		pinned = true
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := pinned || pinningFields[fd.Name()]
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len() && ok; i++ {
				ok = markConsts(list.Get(i).Message(), p, into)
			}
		case fd.Message() != nil && !fd.IsMap():
			ok = markConsts(v.Message(), p, into)
		}
		return ok
	})
	return ok
}

// literalType is the type PostgreSQL gives a numeric literal spelled text
// (of kind 'i' or 'f'), 0 when a parameter could not stand for it exactly.
func literalType(kind byte, text string) uint32 {
	digits := text != "" && strings.Trim(text, "0123456789") == ""
	switch {
	case kind == 'i' && digits:
		return oidInt4 // the scanner makes an integer constant only within int4
	case kind == 'f' && digits:
		// A larger integer: int8 if it fits (negated too, then), else
		// numeric, except that its negation might then fit int8.
		if _, err := strconv.ParseInt(text, 10, 64); err == nil {
			return oidInt8
		}
		return 0
	case kind == 'f' && decimal(text):
		return oidNumeric
	}
	return 0
}

// decimal reports whether text is a decimal number with a point or an
// exponent, as PostgreSQL's scanner reads one (1.5, .5, 5., 1e-3).
func decimal(text string) bool {
	mant, exp, hasExp := strings.Cut(strings.ToLower(text), "e")
	if hasExp {
		exp = strings.TrimLeft(exp, "+-")
		if exp == "" || strings.Trim(exp, "0123456789") != "" {
			return false
		}
	}
	whole, frac, _ := strings.Cut(mant, ".")
	return whole+frac != "" && strings.Trim(whole, "0123456789") == "" && strings.Trim(frac, "0123456789") == ""
}
