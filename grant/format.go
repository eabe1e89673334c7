package grant

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Format renders a predicate as SQL-like text for audit records, explain
// output and tests: deterministic, identifiers quoted when needed. It is
// never executed; the rewriter builds executed filters as parse trees.
func Format(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e, false)
	return b.String()
}

func writeExpr(b *strings.Builder, e Expr, nested bool) {
	switch x := e.(type) {
	case Bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case And:
		writeJunction(b, x.Terms, " AND ", "true", nested)
	case Or:
		writeJunction(b, x.Terms, " OR ", "false", nested)
	case Not:
		b.WriteString("NOT ")
		writeExpr(b, x.X, true)
	case Compare:
		writeOperand(b, x.Left)
		b.WriteString(" " + string(x.Op) + " ")
		writeOperand(b, x.Right)
	case In:
		b.WriteString(quoteIdent(x.Column) + " IN (")
		for i, v := range x.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			writeOperand(b, v)
		}
		b.WriteString(")")
	case NotNull:
		b.WriteString(quoteIdent(x.Column) + " IS NOT NULL")
	default:
		fmt.Fprintf(b, "<%T>", e)
	}
}

func writeJunction(b *strings.Builder, terms []Expr, sep, empty string, nested bool) {
	if len(terms) == 0 {
		b.WriteString(empty)
		return
	}
	if nested && len(terms) > 1 {
		b.WriteString("(")
	}
	for i, t := range terms {
		if i > 0 {
			b.WriteString(sep)
		}
		writeExpr(b, t, true)
	}
	if nested && len(terms) > 1 {
		b.WriteString(")")
	}
}

func writeOperand(b *strings.Builder, o Operand) {
	switch x := o.(type) {
	case Column:
		b.WriteString(quoteIdent(x.Name))
	case Literal:
		switch v := x.V.(type) {
		case string:
			b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
		default:
			fmt.Fprintf(b, "%v", v)
		}
		if x.Type != "" {
			b.WriteString("::" + x.Type)
		}
	default:
		fmt.Fprintf(b, "<%T>", o)
	}
}

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)

func quoteIdent(s string) string {
	if plainIdent.MatchString(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// String renders a mask as kind(parameter), e.g. "partial(4)".
func (m Mask) String() string {
	switch m.Kind {
	case MaskPartial:
		return "partial(" + strconv.Itoa(m.Keep) + ")"
	case MaskHash:
		return "hash(" + m.Key + ")"
	case MaskRound, MaskBucket:
		return string(m.Kind) + "(" + strconv.FormatFloat(m.Step, 'g', -1, 64) + ")"
	case MaskTruncate:
		return "truncate(" + m.Unit + ")"
	}
	return string(m.Kind)
}
