package policy

import (
	"fmt"
	"strings"

	"github.com/mandate-proxy/mandate/grant"
)

// SQLSTATE codes carried by policy errors. The proxy turns an *Error into an
// ErrorResponse with these codes, in one place.
const (
	CodeInsufficientPrivilege = "42501" // a denial
	CodeCannotConnectNow      = "57P03" // live policy state unavailable or stale
	CodeConfigFile            = "F0000" // a policy, schema, entities or masks file is invalid
	CodeInternal              = "XX000"
)

// Error is a policy failure with the SQLSTATE the client should see.
type Error struct {
	Code   string // SQLSTATE
	Msg    string // primary message, shown to the client
	Detail string // e.g. the deciding policy ids
	Err    error  // cause, for logs; never shown to the client
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error with the same Code, so callers can test
// errors.Is(err, &policy.Error{Code: policy.CodeInsufficientPrivilege}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Denied is the 42501 error for action a on a relation whose grant does not
// allow it: the message names the table and the reason, the detail lists
// the deciding policies.
func Denied(r *grant.Relation, a grant.Action) *Error {
	name, reason := "", "no grant"
	if r != nil {
		name = r.Name
		if r.Reason != "" {
			reason = r.Reason
		}
	}
	e := &Error{
		Code: CodeInsufficientPrivilege,
		Msg:  fmt.Sprintf("permission denied: %s on %s: %s", strings.ToUpper(string(a)), name, reason),
	}
	if r != nil && len(r.Policies) > 0 {
		e.Detail = "policies: " + strings.Join(r.Policies, ", ")
	}
	return e
}

func configError(format string, args ...any) *Error {
	return &Error{Code: CodeConfigFile, Msg: fmt.Sprintf(format, args...)}
}
