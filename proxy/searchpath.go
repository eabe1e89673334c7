package proxy

import (
	"strings"

	"github.com/mandate-proxy/mandate/rewrite"
)

// searchPath follows the session's search_path as SET statements change
// it, so the rewriter resolves names as the upstream will. The rewriter
// schema-qualifies every relation it forwards, so a wrong guess here (a SET
// rolled back with its transaction, a role's default path) can change
// which table a name means, never what is enforced on it.
type searchPath struct {
	session  []string // nil: the upstream's default
	local    []string // SET LOCAL, until the transaction ends
	localSet bool
}

// current is the path in effect for the next statement.
func (p *searchPath) current() []string {
	if p.localSet {
		return p.local
	}
	return p.session
}

// apply follows one statement's effect on the path.
func (p *searchPath) apply(e rewrite.Effect) {
	if c := e.SearchPath; c != nil {
		path := c.Path
		if c.Reset {
			path = nil
		}
		if c.Local {
			p.local, p.localSet = path, true
		} else {
			p.session, p.local, p.localSet = path, nil, false
		}
	}
	if e.Tx.Ends() {
		p.local, p.localSet = nil, false
	}
}

// searchPathKey is a path as a cache key component.
func searchPathKey(path []string) string { return strings.Join(path, "\x00") }
