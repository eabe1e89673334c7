package rewrite

import "github.com/mandate-proxy/mandate/grant"

// renderExpr prints a grant predicate for audit records and `mandate
// explain`. It is never executed: the executed filter is built as AST nodes.
func renderExpr(e grant.Expr) string { return grant.Format(e) }
