package rewrite

import (
	"strings"
)

// Setting is a SET or RESET of a mandate.* parameter, or a RESET ALL /
// DISCARD ALL that clears them: session state the proxy keeps itself and
// never forwards upstream (a token in SET mandate.token must not reach the
// server's logs).
type Setting struct {
	Name  string // lower-cased, e.g. "mandate.token"; "" for ResetAll
	Value string // "" for RESET and SET … TO DEFAULT
	Local bool   // SET LOCAL: until the end of the transaction
	Reset bool   // RESET, SET … TO DEFAULT
	// ResetStmt is the RESET statement (Reset too), whose command tag is
	// RESET, where SET … TO DEFAULT's is SET.
	ResetStmt bool
	// ResetAll is RESET ALL or DISCARD ALL: the proxy clears its own
	// settings too, and the statement still goes upstream.
	ResetAll bool
	// DiscardAll is DISCARD ALL, which also drops every prepared statement
	// and portal of the session.
	DiscardAll bool
}

// MandateSetting reports whether stmts is a statement the proxy must act on
// itself: a single SET/RESET of a mandate.* parameter, or RESET ALL /
// DISCARD ALL. A mandate.* setting among other statements is refused (by
// Rewrite) so that it always takes effect between statements.
func MandateSetting(stmts *Statements) (Setting, bool) {
	if stmts == nil || stmts.Len() != 1 {
		return Setting{}, false
	}
	node := stmts.tree.Stmts[0].Stmt
	if d := node.GetDiscardStmt(); d != nil {
		return Setting{ResetAll: true, DiscardAll: true}, d.Target == pgDiscardModeDISCARDALL
	}
	s := node.GetVariableSetStmt()
	if s == nil {
		return Setting{}, false
	}
	if s.Kind == pgVariableSetKindVARRESETALL {
		return Setting{ResetAll: true}, true
	}
	name := strings.ToLower(s.Name)
	if !strings.HasPrefix(name, "mandate.") {
		return Setting{}, false
	}
	out := Setting{Name: name, Local: s.IsLocal}
	switch s.Kind {
	case pgVariableSetKindVARSETVALUE:
		if len(s.Args) != 1 {
			return out, true // a list is not a valid value: Value stays empty
		}
		out.Value = constText(s.Args[0])
	default: // RESET, SET … TO DEFAULT
		out.Reset, out.ResetStmt = true, s.Kind == pgVariableSetKindVARRESET
	}
	return out, true
}
