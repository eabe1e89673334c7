package audit

import (
	"fmt"
	"time"
)

// Decision is the outcome of a statement.
type Decision string

// The decisions.
const (
	DecisionAllow Decision = "allow" // forwarded, possibly rewritten
	DecisionDeny  Decision = "deny"  // refused by policy (SQLSTATE 42501)
	DecisionError Decision = "error" // refused or failed for another reason
)

func (d Decision) valid() bool {
	return d == DecisionAllow || d == DecisionDeny || d == DecisionError
}

// OutcomeUnknown marks an allowed statement that was sent upstream in a
// session that ended before the upstream answered it.
const OutcomeUnknown = "unknown"

// Actor is one link of the actor chain, as in policy.Actor.
type Actor struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // "delegate" or "agent"
}

// Principal is a subject and the actors acting for it.
type Principal struct {
	Subject string  `json:"subject"`
	Actors  []Actor `json:"actors,omitempty"`
}

// Record is one decision. It has no field for the token or the statement's
// text or parameter values, on purpose: it cannot leak what it cannot hold.
// Seq, Prev and Hash are set by the Writer and read back from a log.
type Record struct {
	Seq  uint64 `json:"seq,omitempty"`
	Prev string `json:"prev,omitempty"`

	Time       time.Time `json:"time"`
	Session    string    `json:"session"`
	ClientAddr string    `json:"client_addr,omitempty"`
	Subject    string    `json:"subject"`
	Actors     []Actor   `json:"actors,omitempty"` // closest to the subject first, connected actor last
	// Login is who logged in, when a statement runs as an identity that
	// login assumed (SET mandate.token); absent when they are the same.
	Login *Principal `json:"login,omitempty"`
	// User is the user name a refused login gave, when its token named
	// someone else (the subject).
	User         string `json:"user,omitempty"`
	DelegationID string `json:"delegation_id,omitempty"`
	Purpose      string `json:"purpose,omitempty"`
	// Fingerprint identifies the statement's shape (pg_query fingerprint),
	// constants excluded.
	Fingerprint string        `json:"fingerprint"`
	Action      string        `json:"action,omitempty"` // select, insert, update, delete, copy, …, each write of a writable CTE too ("update,insert"); login for an authentication, set for a change of identity or purpose
	Tables      []string      `json:"tables,omitempty"` // schema-qualified relations touched
	Decision    Decision      `json:"decision"`
	PolicyIDs   []string      `json:"policy_ids,omitempty"`
	Filters     []string      `json:"filters,omitempty"` // row filters applied, as "table: predicate"
	Masks       []string      `json:"masks,omitempty"`   // masks applied, as "table.column: mask"
	Rows        int64         `json:"rows_affected"`     // the command tag's count: a writable CTE's rows are not in it
	Duration    time.Duration `json:"duration_ns"`
	SQLState    string        `json:"sqlstate,omitempty"` // empty on success
	// Outcome is OutcomeUnknown for an allowed statement whose session
	// ended before the upstream said how it ended: it may have run.
	Outcome string `json:"outcome,omitempty"`

	Hash string `json:"hash,omitempty"`
}

func (r *Record) validate() error {
	if !r.Decision.valid() {
		return fmt.Errorf("audit: invalid decision %q", r.Decision)
	}
	return nil
}
