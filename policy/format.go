package policy

import (
	"strconv"
	"strings"

	"github.com/mandate-proxy/mandate/grant"
)

// FormatExpr renders a predicate as SQL-like text: deterministic, so tests
// compare filters by it and audit records log it. It is not SQL for
// execution; the rewriter builds that from the tree.
func FormatExpr(e grant.Expr) string {
	var b strings.Builder
	writeExpr(&b, e, false)
	return b.String()
}

func writeExpr(b *strings.Builder, e grant.Expr, nested bool) {
	switch e := e.(type) {
	case nil:
		b.WriteString("<nil>")
	case grant.Bool:
		b.WriteString(strconv.FormatBool(bool(e)))
	case grant.And:
		writeJunction(b, e.Terms, " AND ", nested)
	case grant.Or:
		writeJunction(b, e.Terms, " OR ", nested)
	case grant.Not:
		b.WriteString("NOT ")
		writeExpr(b, e.X, true)
	case grant.Compare:
		writeOperand(b, e.Left)
		b.WriteString(" " + string(e.Op) + " ")
		writeOperand(b, e.Right)
	case grant.In:
		b.WriteString(e.Column + " IN (")
		for i, v := range e.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			writeOperand(b, v)
		}
		b.WriteString(")")
	case grant.NotNull:
		b.WriteString(e.Column + " IS NOT NULL")
	default:
		b.WriteString("<unknown>")
	}
}

func writeJunction(b *strings.Builder, terms []grant.Expr, sep string, nested bool) {
	if nested {
		b.WriteString("(")
	}
	for i, t := range terms {
		if i > 0 {
			b.WriteString(sep)
		}
		writeExpr(b, t, true)
	}
	if nested {
		b.WriteString(")")
	}
}

func writeOperand(b *strings.Builder, o grant.Operand) {
	switch o := o.(type) {
	case grant.Column:
		b.WriteString(o.Name)
	case grant.Literal:
		switch v := o.V.(type) {
		case string:
			b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case bool:
			b.WriteString(strconv.FormatBool(v))
		default:
			b.WriteString("<invalid>")
		}
		if o.Type != "" {
			b.WriteString("::" + o.Type)
		}
	}
}

// FormatMask renders a mask as kind(parameter), e.g. "partial(4)".
func FormatMask(m grant.Mask) string {
	switch m.Kind {
	case grant.MaskPartial:
		return "partial(" + strconv.Itoa(m.Keep) + ")"
	case grant.MaskHash:
		return "hash(" + m.Key + ")"
	case grant.MaskRound, grant.MaskBucket:
		return string(m.Kind) + "(" + strconv.FormatFloat(m.Step, 'g', -1, 64) + ")"
	case grant.MaskTruncate:
		return "truncate(" + m.Unit + ")"
	}
	return string(m.Kind)
}

// FormatRelation renders a relation grant deterministically, one line per
// part, for audit records, explain output and tests.
func FormatRelation(r *grant.Relation) string {
	if r == nil {
		return "<no grant>"
	}
	var b strings.Builder
	b.WriteString(r.Name + "\n")
	for _, a := range grant.Actions {
		b.WriteString("  " + string(a) + ": ")
		if r.Can(a) {
			b.WriteString(FormatExpr(r.RowFilter(a)))
		} else {
			b.WriteString("denied")
		}
		b.WriteString("\n")
	}
	for _, c := range r.MaskedColumns() {
		b.WriteString("  mask " + c + ": " + FormatMask(r.Masks[c]) + "\n")
	}
	if len(r.Policies) > 0 {
		b.WriteString("  policies: " + strings.Join(r.Policies, ", ") + "\n")
	}
	if r.Reason != "" {
		b.WriteString("  reason: " + r.Reason + "\n")
	}
	return b.String()
}
