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

// startupSearchPath is the search_path a client sets at startup, as a
// parameter or with -c in options; nil when it sets none. Names are split
// on commas with surrounding blanks and double quotes removed: enough to
// resolve names as the upstream will (see searchPath on why a wrong guess
// is never a leak).
func startupSearchPath(params map[string]string) []string {
	v, ok := params["search_path"]
	fields := strings.Fields(params["options"])
	for i := 0; i < len(fields); i++ {
		kv := strings.TrimPrefix(strings.TrimPrefix(fields[i], "--"), "-c")
		if kv == "" && i+1 < len(fields) {
			i++
			kv = fields[i]
		}
		if name, val, found := strings.Cut(kv, "="); found && strings.ReplaceAll(strings.ToLower(name), "-", "_") == "search_path" {
			v, ok = val, true
		}
	}
	if !ok {
		return nil
	}
	var path []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.Trim(strings.TrimSpace(p), `"`); p != "" {
			path = append(path, p)
		}
	}
	return path
}
