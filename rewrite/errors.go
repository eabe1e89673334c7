package rewrite

import "fmt"

// SQLSTATE codes the rewriter returns. The proxy maps an *Error to an
// ErrorResponse in one place; nothing in this package talks to a client.
const (
	CodeDenied             = "42501" // insufficient_privilege: a grant or a rule refuses
	CodeUnsupported        = "0A000" // feature_not_supported: cannot be enforced, so refused
	CodeUndefinedTable     = "42P01" // undefined_table: not in the catalog
	CodeSyntax             = "42601" // syntax_error: the statement does not parse
	CodeInternal           = "XX000" // internal_error: a bug in the rewriter, never data-dependent
	codeUndefinedColumn    = "42703"
	codeUndefinedParameter = "42P02"
)

// Error is a refusal with the SQLSTATE the client should see. Msg names the
// relation or construct and the reason; Detail carries policy ids when a
// policy decided. Errors never echo grant filters or mask keys.
type Error struct {
	Code   string
	Msg    string
	Detail string
	// Relation and Action name what a denial refused, for the audit
	// trail, when it is about one relation ("" otherwise).
	Relation, Action string
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s (SQLSTATE %s; %s)", e.Msg, e.Code, e.Detail)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Msg, e.Code)
}

func denied(format string, args ...any) *Error {
	return &Error{Code: CodeDenied, Msg: fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) *Error {
	return &Error{Code: CodeUnsupported, Msg: fmt.Sprintf(format, args...)}
}
