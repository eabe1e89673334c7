package proxy

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
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

// coded is implemented by the typed errors of policy and rewrite.
type coded interface {
	error
	SQLState() string
}

// toErrorResponse is the one place where an error becomes what the client
// sees. Unknown errors are reported as internal without their text, so
// nothing about the upstream or the policy store leaks.
func toErrorResponse(err error) *pgproto3.ErrorResponse {
	severity := "ERROR"
	var pe *Error
	var upstream *pgconn.PgError
	var c coded
	switch {
	case errors.As(err, &pe):
		if pe.Fatal {
			severity = "FATAL"
		}
		return &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: pe.Code, Message: pe.Msg, Detail: pe.Detail, Hint: pe.Hint}
	case errors.As(err, &upstream):
		// Upstream errors during connect (e.g. database does not exist) are
		// the client's to see, as PostgreSQL would report them.
		return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: upstream.Code, Message: upstream.Message, Detail: upstream.Detail, Hint: upstream.Hint}
	case errors.As(err, &c):
		return &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: c.SQLState(), Message: c.Error()}
	default:
		return &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: codeInternal, Message: "internal error in mandate"}
	}
}
