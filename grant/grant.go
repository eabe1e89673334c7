// Package grant is the vocabulary shared by policy (which computes grants) and
// rewrite (which applies them): what a scope may do with one relation, as plain
// data. It holds no logic that needs Cedar, SQL text or the network, so both
// sides can depend on it without depending on each other.
package grant

import "sort"

// Action is a statement's verb on a relation.
type Action string

// The actions a grant decides. Their string values are the Cedar action ids.
const (
	Select Action = "select"
	Insert Action = "insert"
	Update Action = "update"
	Delete Action = "delete"
)

// Actions lists every action in a stable order.
var Actions = []Action{Select, Insert, Update, Delete}

// Relation is what a scope may do with one relation: the allowed actions, the
// row filter of each allowed action, and the masks of its columns.
type Relation struct {
	// Name is the schema-qualified relation name, e.g. "public.accounts".
	Name string
	// Allowed is true for each action that every party of the scope may take.
	Allowed map[Action]bool
	// Filter is the row predicate for each allowed action. For select, update
	// and delete it limits the rows reached; for insert and update it is also
	// the check every new row must pass. A missing entry for an allowed action
	// means False (fail closed), never "all rows".
	Filter map[Action]Expr
	// Masks maps a column name to its mask. A column absent from Masks is raw.
	Masks map[string]Mask
	// Policies are the ids (Cedar @id) of the policies that decided, sorted.
	Policies []string
	// Reason explains a denial in words a user can act on; empty when allowed.
	Reason string
}

// Can reports whether action a is allowed.
func (r *Relation) Can(a Action) bool { return r != nil && r.Allowed[a] }

// RowFilter returns the predicate for action a: False when a is not allowed or
// no filter was computed, so a missing entry can never widen access.
func (r *Relation) RowFilter(a Action) Expr {
	if !r.Can(a) {
		return False
	}
	if e, ok := r.Filter[a]; ok && e != nil {
		return e
	}
	return False
}

// MaskedColumns returns the names of the masked columns, sorted.
func (r *Relation) MaskedColumns() []string {
	out := make([]string, 0, len(r.Masks))
	for c := range r.Masks {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// Set is the grants of one scope for the relations a statement touches, keyed
// by schema-qualified name. Version changes whenever any input of the grants
// changes (policy set, delegations, consents, agents, catalog), so a cache
// keyed by (statement, Version) never serves a stale decision.
type Set struct {
	Version   uint64
	Relations map[string]*Relation
}

// Lookup returns the grant for a schema-qualified relation, or nil.
func (s *Set) Lookup(name string) *Relation {
	if s == nil {
		return nil
	}
	return s.Relations[name]
}
