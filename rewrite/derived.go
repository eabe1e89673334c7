package rewrite

import (
	"strconv"
	"strings"
	"sync"
)

// DerivedCache maps a derived table's inputs to its deparsed text (see
// Options.Derived). It is bounded: when full it starts over.
type DerivedCache struct {
	mu      sync.RWMutex
	entries map[string]string
}

const maxDerivedEntries = 4096

func (c *DerivedCache) get(key string) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.entries[key]
	return v, ok
}

func (c *DerivedCache) put(key, text string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxDerivedEntries {
		c.entries = map[string]string{}
	}
	c.entries[key] = text
}

// derivedKey names everything a site's derived table text depends on
// (TestDerivedCacheIsTransparent checks it against every golden case), or
// "" when it cannot be cached (a TABLESAMPLE moved inside carries user
// text). grants is the grant set's version: a digest of all its grants.
func derivedKey(s *site, grants uint64, fenced bool) string {
	if s.sample != nil {
		return ""
	}
	sub := s.slot.GetRangeSubselect().GetSubquery().GetSelectStmt()
	if sub == nil || len(sub.FromClause) != 1 {
		return ""
	}
	rv := sub.FromClause[0].GetRangeVar()
	if rv == nil || rv.Alias == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(strconv.FormatUint(grants, 16))
	b.WriteByte('|')
	b.WriteString(s.table.QualifiedName())
	b.WriteByte('|')
	b.WriteString(rv.Alias.Aliasname)
	b.WriteString(strconv.FormatBool(rv.Inh)) // ONLY
	b.WriteString(strconv.FormatBool(s.locked))
	b.WriteString(strconv.FormatBool(fenced))
	for _, c := range s.table.Columns {
		b.WriteByte('|')
		b.WriteString(c.Name)
		b.WriteByte(':')
		b.WriteString(c.Type)
	}
	return b.String()
}
