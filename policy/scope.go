package policy

import (
	"time"

	"github.com/mandate-proxy/mandate/grant"
)

// ActorKind tells a human delegate from an AI agent in an actor chain.
type ActorKind string

// The kinds of actor.
const (
	ActorDelegate ActorKind = "delegate"
	ActorAgent    ActorKind = "agent"
)

// Actor is one link of an actor chain: who acts for the subject.
type Actor struct {
	ID   string
	Kind ActorKind
}

// Scope is everything a decision depends on for one statement (SPEC §2).
// Actors is ordered from the one closest to the subject to the one actually
// connected: for "agent acting for bob acting for alice" it is [bob, agent].
type Scope struct {
	Subject    string
	Actors     []Actor
	Delegation *Delegation // the delegation that lets Actors act for Subject, if any
	Agent      *Agent      // the registration of the agent in Actors, if any
	Consents   []string    // purposes Subject currently consents to
	Purpose    string      // purpose of use declared for this statement
	Context    Context
}

// Context is the request context given to Cedar besides the scope.
type Context struct {
	Now        time.Time
	ClientAddr string
	AuthMethod string // "jwt", "scram", "trust"
	SessionID  string
	Scopes     []string       // OAuth scopes from the token
	Claims     map[string]any // other token claims (device, risk level, …)
}

// Delegation is a stored grant letting Delegate act for Grantor.
type Delegation struct {
	ID       string
	Grantor  string // the subject whose rights are delegated
	Delegate string
	Tables   []string       // schema-qualified relations; empty grants nothing
	Actions  []grant.Action // allowed actions on Tables
	Columns  []string       // visible columns as "table.column"; empty means all of Tables' columns
	// RowConstraint maps a relation to a Cedar condition over `resource`
	// (e.g. `resource.category in ["tax", "income"]`) that limits its rows.
	RowConstraint map[string]string
	Purpose       string
	NotBefore     time.Time
	ExpiresAt     time.Time // zero: no expiry
	RevokedAt     time.Time // zero: not revoked
	CreatedAt     time.Time
}

// Active reports whether the delegation grants anything at now: inside its
// time window and not revoked. Expiry needs no notification: callers check it
// against the clock at every statement.
func (d *Delegation) Active(now time.Time) bool {
	if d == nil {
		return false
	}
	if !d.RevokedAt.IsZero() && !now.Before(d.RevokedAt) {
		return false
	}
	if !d.NotBefore.IsZero() && now.Before(d.NotBefore) {
		return false
	}
	if !d.ExpiresAt.IsZero() && !now.Before(d.ExpiresAt) {
		return false
	}
	return true
}

// Agent is an AI agent's registration: whom it may act for and within which
// scope. An agent never gets more than the user it acts for.
type Agent struct {
	ID       string
	Owner    string         // the user it may act for; "*" for any user
	Tables   []string       // schema-qualified relations it may touch
	Actions  []grant.Action // allowed actions
	Masked   []string       // columns ("table.column") it only ever sees masked
	Disabled time.Time      // zero: enabled
}

// Active reports whether the agent may act for subject at now.
func (a *Agent) Active(subject string, now time.Time) bool {
	if a == nil {
		return false
	}
	if !a.Disabled.IsZero() && !now.Before(a.Disabled) {
		return false
	}
	return a.Owner == "*" || a.Owner == subject
}

// Consent is a subject's answer for one purpose.
type Consent struct {
	Subject string
	Purpose string
	Granted bool // false: withdrawn
	At      time.Time
}
