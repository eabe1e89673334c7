package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes this package puts in an Error.
const (
	// CodeCannotConnectNow is what a client sees while the proxy cannot vouch
	// for the freshness of its policy state (fail closed).
	CodeCannotConnectNow = "57P03"
	// CodeInvalidParameter marks input the store refuses before writing.
	CodeInvalidParameter = "22023"
)

// Sentinel errors, wrapped by the Store methods; test with errors.Is.
var (
	ErrNotFound          = errors.New("not found")
	ErrAlreadyRevoked    = errors.New("delegation already revoked")
	ErrAlreadyRegistered = errors.New("agent already registered")
	ErrAlreadyDisabled   = errors.New("agent already disabled")
	// ErrStale is wrapped by the Error returned when the cached state is
	// older than Config.MaxStaleness or was never loaded.
	ErrStale = errors.New("policy state is stale")
)

// Error is a failure that carries the SQLSTATE a client should see. The
// proxy turns it into an ErrorResponse in one place; the CLI prints Message.
type Error struct {
	Code    string // SQLSTATE
	Message string
	Err     error // cause, if any
}

func (e *Error) Error() string {
	if e.Err == nil || e.Err == ErrStale {
		return e.Message
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// constraintMessages explains each named constraint of the schema in the
// terms a CLI user typed, so a violation never surfaces as a bare name.
var constraintMessages = map[string]string{
	"delegations_parties_named":         "a delegation needs a grantor and a delegate",
	"delegations_not_self":              "a subject cannot delegate to itself",
	"delegations_tables_named":          "a delegation must name at least one table, and no empty table names",
	"delegations_actions_valid":         "delegation actions must be one or more of select, insert, update, delete",
	"delegations_columns_named":         "delegation columns must not be empty names",
	"delegations_row_constraint_valid":  "each row constraint must be a Cedar condition string keyed by one of the delegated tables",
	"delegations_window_valid":          "a delegation must expire after it starts (expires_at > not_before)",
	"delegations_revoked_after_created": "a delegation cannot be revoked before it was created",
	"delegations_pkey":                  "a delegation with this id already exists",
	"consents_named":                    "a consent needs a subject and a purpose",
	"agents_named":                      "an agent needs an id and an owner (\"*\" for any user)",
	"agents_tables_named":               "an agent must name at least one table, and no empty table names",
	"agents_actions_valid":              "agent actions must be one or more of select, insert, update, delete",
	"agents_masked_named":               "agent masked columns must not be empty names",
	"agents_disabled_after_created":     "an agent cannot be disabled before it was registered",
}

// explain wraps a PostgreSQL error raised by a write in an *Error with a
// message a user can act on; other errors pass through with op context.
func explain(op string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	msg, ok := constraintMessages[pgErr.ConstraintName]
	if !ok {
		msg = pgErr.Message
	}
	return &Error{Code: pgErr.Code, Message: "store: " + op + ": " + msg, Err: pgErr}
}
