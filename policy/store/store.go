package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/policy"
)

// DB is what the Store needs from a connection; *pgx.Conn, *pgxpool.Pool
// and pgx.Tx all satisfy it. A *pgx.Conn must not be shared between
// goroutines.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store reads and writes the live policy state. It is what the
// `mandate delegate|consent|agent` commands drive; the proxy reads the same
// tables through State. Every write is broadcast to watchers by triggers.
type Store struct {
	db DB
}

// New returns a Store over db. The schema must have been migrated.
func New(db DB) *Store { return &Store{db: db} }

// DelegationFilter narrows ListDelegations. Zero fields match everything.
type DelegationFilter struct {
	Grantor  string
	Delegate string
	// ActiveAt, when set, keeps only delegations that grant something at
	// that instant (inside their window and not revoked).
	ActiveAt time.Time
}

// ConsentFilter narrows ListConsents. Zero fields match everything.
type ConsentFilter struct {
	Subject string
	Purpose string
}

// GrantDelegation stores d and returns its generated id. d.ID, d.RevokedAt
// and d.CreatedAt are ignored. A zero NotBefore means "from creation", a zero
// ExpiresAt "until revoked". Invalid scopes are refused by the schema's
// constraints and reported as an *Error naming the rule broken.
func (s *Store) GrantDelegation(ctx context.Context, d policy.Delegation) (string, error) {
	if d.RowConstraint == nil {
		d.RowConstraint = map[string]string{}
	}
	var id string
	err := s.db.QueryRow(ctx, `
		INSERT INTO mandate.delegations
			(grantor, delegate, tables, actions, columns, row_constraint, purpose, not_before, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING id::text`,
		d.Grantor, d.Delegate, nonNil(d.Tables), actionStrings(d.Actions), nonNil(d.Columns),
		d.RowConstraint, d.Purpose, nullTime(d.NotBefore), nullTime(d.ExpiresAt),
	).Scan(&id)
	if err != nil {
		return "", explain("grant delegation", err)
	}
	return id, nil
}

// RevokeDelegation ends delegation id now and returns the revocation time
// (the database clock at the change; it commits with this call). The
// delegation grants nothing from the next statement on, on every replica.
// Revoking an unknown id wraps ErrNotFound, a revoked one ErrAlreadyRevoked.
func (s *Store) RevokeDelegation(ctx context.Context, id string) (time.Time, error) {
	return s.endOnce(ctx, "mandate.delegations", "revoked_at", id, "revoke delegation", ErrAlreadyRevoked)
}

// endOnce sets column (revoked_at, disabled_at) of row id of table to now,
// once: an unknown id wraps ErrNotFound, a row already ended wraps already.
// One statement, so the change commits with the UPDATE and the recorded
// time is as close to the commit as the database can tell. table and
// column are this package's constants, never user input.
func (s *Store) endOnce(ctx context.Context, table, column, id, what string, already error) (time.Time, error) {
	var at, previously *time.Time
	err := s.db.QueryRow(ctx, `
		WITH target AS (
			SELECT id, `+column+` AS ended FROM `+table+` WHERE id = $1 FOR UPDATE
		), ended AS (
			UPDATE `+table+` r SET `+column+` = clock_timestamp()
			FROM target t WHERE r.id = t.id AND t.ended IS NULL
			RETURNING r.`+column+`
		)
		SELECT (SELECT `+column+` FROM ended), (SELECT ended FROM target)
		WHERE EXISTS (SELECT FROM target)`, id).Scan(&at, &previously)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows),
		errors.As(err, &pgErr) && pgErr.Code == "22P02": // not a uuid: no such delegation
		return time.Time{}, fmt.Errorf("store: %s %q: %w", what, id, ErrNotFound)
	case err != nil:
		return time.Time{}, explain(what, err)
	case at == nil:
		return time.Time{}, fmt.Errorf("store: %s %q: %w at %s", what, id, already, previously.UTC().Format(time.RFC3339))
	}
	return *at, nil
}

const delegationColumns = `id::text, grantor, delegate, tables, actions, columns, row_constraint,
	purpose, not_before, expires_at, revoked_at, created_at`

// ListDelegations returns the delegations matching f, oldest first.
func (s *Store) ListDelegations(ctx context.Context, f DelegationFilter) ([]policy.Delegation, error) {
	rows, err := s.db.Query(ctx, `
		SELECT `+delegationColumns+`
		FROM mandate.delegations
		WHERE ($1 = '' OR grantor = $1)
		  AND ($2 = '' OR delegate = $2)
		  AND ($3::timestamptz IS NULL OR (
		        revoked_at IS NULL
		        AND (not_before IS NULL OR not_before <= $3)
		        AND (expires_at IS NULL OR expires_at > $3)))
		ORDER BY created_at, id`, f.Grantor, f.Delegate, nullTime(f.ActiveAt))
	if err != nil {
		return nil, fmt.Errorf("store: list delegations: %w", err)
	}
	ds, err := pgx.CollectRows(rows, scanDelegation)
	if err != nil {
		return nil, fmt.Errorf("store: list delegations: %w", err)
	}
	return ds, nil
}

func scanDelegation(row pgx.CollectableRow) (policy.Delegation, error) {
	var (
		d                               policy.Delegation
		actions                         []string
		notBefore, expiresAt, revokedAt *time.Time
	)
	err := row.Scan(&d.ID, &d.Grantor, &d.Delegate, &d.Tables, &actions, &d.Columns, &d.RowConstraint,
		&d.Purpose, &notBefore, &expiresAt, &revokedAt, &d.CreatedAt)
	d.Actions = toActions(actions)
	d.NotBefore, d.ExpiresAt, d.RevokedAt = deref(notBefore), deref(expiresAt), deref(revokedAt)
	return d, err
}

// SetConsent records subject's answer for purpose. Repeating the current
// answer changes nothing and broadcasts nothing; every change is kept in
// mandate.consent_history.
func (s *Store) SetConsent(ctx context.Context, subject, purpose string, granted bool) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO mandate.consents (subject, purpose, granted) VALUES ($1, $2, $3)
		ON CONFLICT (subject, purpose) DO UPDATE
			SET granted = excluded.granted, changed_at = clock_timestamp()
			WHERE consents.granted IS DISTINCT FROM excluded.granted`,
		subject, purpose, granted)
	if err != nil {
		return explain("set consent", err)
	}
	return nil
}

// ListConsents returns the current answers matching f, withdrawn ones
// included, ordered by subject then purpose.
func (s *Store) ListConsents(ctx context.Context, f ConsentFilter) ([]policy.Consent, error) {
	rows, err := s.db.Query(ctx, `
		SELECT subject, purpose, granted, changed_at FROM mandate.consents
		WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR purpose = $2)
		ORDER BY subject, purpose`, f.Subject, f.Purpose)
	if err != nil {
		return nil, fmt.Errorf("store: list consents: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (policy.Consent, error) {
		var c policy.Consent
		err := row.Scan(&c.Subject, &c.Purpose, &c.Granted, &c.At)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list consents: %w", err)
	}
	return cs, nil
}

// RegisterAgent stores a's registration; a.Disabled is ignored. An id can
// be registered once: a disabled agent stays on record under its id, so a
// changed scope needs a new id. A taken id wraps ErrAlreadyRegistered.
func (s *Store) RegisterAgent(ctx context.Context, a policy.Agent) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO mandate.agents (id, owner, tables, actions, masked) VALUES ($1, $2, $3, $4, $5)`,
		a.ID, a.Owner, nonNil(a.Tables), actionStrings(a.Actions), nonNil(a.Masked))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.ConstraintName == "agents_pkey" {
		return fmt.Errorf("store: register agent %q: %w", a.ID, ErrAlreadyRegistered)
	}
	if err != nil {
		return explain("register agent", err)
	}
	return nil
}

// DisableAgent stops agent id from acting, from the next statement on, and
// returns when. An unknown id wraps ErrNotFound, a disabled one
// ErrAlreadyDisabled.
func (s *Store) DisableAgent(ctx context.Context, id string) (time.Time, error) {
	return s.endOnce(ctx, "mandate.agents", "disabled_at", id, "disable agent", ErrAlreadyDisabled)
}

const agentColumns = `id, owner, tables, actions, masked, disabled_at`

// ListAgents returns every registration, disabled ones included, by id.
func (s *Store) ListAgents(ctx context.Context) ([]policy.Agent, error) {
	rows, err := s.db.Query(ctx, `SELECT `+agentColumns+` FROM mandate.agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	as, err := pgx.CollectRows(rows, scanAgent)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	return as, nil
}

func scanAgent(row pgx.CollectableRow) (policy.Agent, error) {
	var (
		a        policy.Agent
		actions  []string
		disabled *time.Time
	)
	err := row.Scan(&a.ID, &a.Owner, &a.Tables, &actions, &a.Masked, &disabled)
	a.Actions = toActions(actions)
	a.Disabled = deref(disabled)
	return a, err
}

// nonNil keeps an absent list from reaching a NOT NULL array column as NULL.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func actionStrings(as []grant.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

func toActions(ss []string) []grant.Action {
	out := make([]grant.Action, len(ss))
	for i, s := range ss {
		out[i] = grant.Action(s)
	}
	return out
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
