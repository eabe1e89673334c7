package policy

import (
	"strings"

	"github.com/mandate-proxy/mandate/grant"
)

// FormatRelation renders a relation grant deterministically, one line per
// part, for audit records, explain output and tests.
func FormatRelation(r *grant.Relation) string {
	if r == nil {
		return "<no grant>"
	}
	var b strings.Builder
	b.WriteString(r.Name + "\n")
	for _, a := range grant.Actions {
		b.WriteString("  " + string(a) + ": ")
		if r.Can(a) {
			b.WriteString(grant.Format(r.RowFilter(a)))
		} else {
			b.WriteString("denied")
		}
		b.WriteString("\n")
	}
	for _, c := range r.MaskedColumns() {
		b.WriteString("  mask " + c + ": " + r.Masks[c].String() + "\n")
	}
	if len(r.Policies) > 0 {
		b.WriteString("  policies: " + strings.Join(r.Policies, ", ") + "\n")
	}
	if r.Reason != "" {
		b.WriteString("  reason: " + r.Reason + "\n")
	}
	return b.String()
}
