package proxy

import "strings"

// searchPath follows the session's search_path as SET statements change
// it, so the rewriter resolves names as the upstream will. The rewriter
// schema-qualifies every relation it forwards, so a wrong guess here can
// change which table a name means, never what is enforced on it.
type searchPath struct {
	session []string // nil: the upstream's default
	local   []string // SET LOCAL, until the transaction ends
}

// current is the path in effect for the next statement.
func (p *searchPath) current() []string {
	if p.local != nil {
		return p.local
	}
	return p.session
}

// searchPathKey is a path as a cache key component.
func searchPathKey(path []string) string { return strings.Join(path, "\x00") }
