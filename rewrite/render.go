package rewrite

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mandate-proxy/mandate/grant"
)

// renderExpr prints a grant predicate for audit records and `mandate
// explain`. It is never executed: the executed filter is built as AST nodes.
func renderExpr(e grant.Expr) string {
	var b strings.Builder
	render(&b, e, false)
	return b.String()
}

func render(b *strings.Builder, e grant.Expr, nested bool) {
	switch x := e.(type) {
	case grant.Bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case grant.And:
		renderJoin(b, x.Terms, " AND ", "true", nested)
	case grant.Or:
		renderJoin(b, x.Terms, " OR ", "false", nested)
	case grant.Not:
		b.WriteString("NOT ")
		render(b, x.X, true)
	case grant.Compare:
		renderOperand(b, x.Left)
		b.WriteString(" " + string(x.Op) + " ")
		renderOperand(b, x.Right)
	case grant.In:
		b.WriteString(quoteIdent(x.Column) + " IN (")
		for i, v := range x.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			renderOperand(b, v)
		}
		b.WriteString(")")
	case grant.NotNull:
		b.WriteString(quoteIdent(x.Column) + " IS NOT NULL")
	default:
		fmt.Fprintf(b, "<%T>", e)
	}
}

func renderJoin(b *strings.Builder, terms []grant.Expr, sep, empty string, nested bool) {
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
		render(b, t, true)
	}
	if nested && len(terms) > 1 {
		b.WriteString(")")
	}
}

func renderOperand(b *strings.Builder, o grant.Operand) {
	switch x := o.(type) {
	case grant.Column:
		b.WriteString(quoteIdent(x.Name))
	case grant.Literal:
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
