package proxy

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/identity"
	"github.com/mandate-proxy/mandate/policy/store"
	"github.com/mandate-proxy/mandate/rewrite"
)

// SQLSTATEs the proxy itself reports.
const (
	codeProtocolViolation  = "08P01"
	codeConnectionFailure  = "08006"
	codeCannotConnect      = "08001"
	codeTooManyConnections = "53300"
	codeInvalidAuthSpec    = "28000"
	codeInvalidPassword    = "28P01"
	codeFeatureUnsupported = "0A000"
	codeAdminShutdown      = "57P01"
	codeIdleSession        = "57P05"
	codeIdleInTransaction  = "25P03"
	codeInsufficientPriv   = "42501"
	codeInternal           = "XX000"
)

// Error is an error with a SQLSTATE, the form every error takes before it
// reaches a client. Fatal errors end the session after being sent.
type Error struct {
	Code   string
	Msg    string
	Detail string
	Hint   string
	Fatal  bool
	Err    error // the cause, for logs only: never sent to the client
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func fatalf(code, msg string, cause error) *Error {
	return &Error{Code: code, Msg: msg, Fatal: true, Err: cause}
}

// toErrorResponse is the one place where an error becomes what the client
// sees: the typed errors of rewrite, policy, the store and identity carry
// their SQLSTATE; unknown errors are reported as internal without their
// text, so nothing about the upstream or the policy store leaks.
func toErrorResponse(err error) *pgproto3.ErrorResponse {
	r := &pgproto3.ErrorResponse{Severity: "ERROR", Code: codeInternal, Message: "internal error in mandate"}
	var (
		pe       *Error
		upstream *pgconn.PgError
		re       *rewrite.Error
		pol      *policy.Error
		se       *store.Error
		ie       *identity.Error
	)
	switch {
	case errors.As(err, &pe):
		r.Code, r.Message, r.Detail, r.Hint = pe.Code, pe.Msg, pe.Detail, pe.Hint
		if pe.Fatal {
			r.Severity = "FATAL"
		}
	case errors.As(err, &upstream):
		// Upstream errors during connect (e.g. database does not exist) are
		// the client's to see, as PostgreSQL would report them.
		r.Severity, r.Code, r.Message, r.Detail, r.Hint = "FATAL", upstream.Code, upstream.Message, upstream.Detail, upstream.Hint
	case errors.As(err, &re):
		r.Code, r.Message, r.Detail = re.Code, re.Msg, re.Detail
	case errors.As(err, &pol):
		r.Code, r.Message, r.Detail = pol.Code, pol.Msg, pol.Detail
	case errors.As(err, &se):
		r.Code, r.Message = se.Code, se.Message
	case errors.As(err, &ie):
		r.Code, r.Message = ie.Code, ie.Msg
	}
	r.SeverityUnlocalized = r.Severity
	return r
}

// asFatal makes any error end the session (an authentication failure).
func asFatal(err error) *Error {
	r := toErrorResponse(err)
	return &Error{Code: r.Code, Msg: r.Message, Detail: r.Detail, Fatal: true, Err: err}
}
