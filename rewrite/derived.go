package rewrite

import (
	"slices"
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

// derivedMarker starts the text that stands in for a derived table while
// the statement around it is deparsed (deparseAround).
const derivedMarker = "mandate\x01derived"

// deparseAround deparses stmt with the derived table of each of sites
// taken from cache (deparsed once per grants, as splice does): the
// statement is deparsed, and checked to read back as itself, with
// (SELECT 'marker') in place of each, and the marker's text replaced by
// the derived table's after. A derived table is most of a rewritten
// statement's text, and deparsing and checking it again for every new
// statement was most of the deparse path's cost. A marker the statement
// itself spells, or a site not cacheable, and every derived table is
// deparsed in place instead.
func deparseAround(stmt *pgNode, sites []*site, cache *DerivedCache, grants uint64, fenced bool) (string, error) {
	type held struct {
		slot  *pgRangeSubselect
		query *pgNode
		text  string
	}
	var hold []held
	restore := func() {
		for _, h := range hold {
			h.slot.Subquery = h.query
		}
		hold = nil
	}
	defer restore()
	for i, s := range sites {
		key := derivedKey(s, grants, fenced)
		if key == "" {
			return deparse(stmt)
		}
		slot := s.slot.GetRangeSubselect()
		if slot == nil {
			return deparse(stmt)
		}
		text, ok := cache.get(key)
		if !ok {
			var err error
			if text, err = deparse(slot.Subquery); err != nil {
				return "", err
			}
			cache.put(key, text)
		}
		hold = append(hold, held{slot: slot, query: slot.Subquery, text: text})
		marker := derivedMarker + strconv.Itoa(i) + "\x01"
		slot.Subquery = &pgNode{Node: &pgNodeSelectStmt{SelectStmt: &pgSelectStmt{
			TargetList:  []*pgNode{resTarget("", strConst(marker))},
			LimitOption: pgLimitOptionLIMITOPTIONDEFAULT, Op: pgSetOperationSETOPNONE,
		}}}
	}
	out, err := deparse(stmt)
	if err != nil || len(hold) == 0 {
		return out, err
	}
	if strings.Count(out, derivedMarker) != len(hold) {
		restore()
		return deparse(stmt)
	}
	// Each marker is found once (the count above), in whatever order the
	// walk met the sites: stitch by position.
	type cut struct {
		at, end int
		text    string
	}
	cuts := make([]cut, 0, len(hold))
	for i, h := range hold {
		stand := "SELECT '" + derivedMarker + strconv.Itoa(i) + "\x01'"
		at := strings.Index(out, "("+stand+")")
		if at < 0 {
			restore()
			return deparse(stmt)
		}
		cuts = append(cuts, cut{at: at + 1, end: at + 1 + len(stand), text: h.text})
	}
	slices.SortFunc(cuts, func(a, b cut) int { return a.at - b.at })
	var b strings.Builder
	b.Grow(len(out) + 512*len(cuts))
	pos := 0
	for _, c := range cuts {
		b.WriteString(out[pos:c.at])
		b.WriteString(c.text)
		pos = c.end
	}
	b.WriteString(out[pos:])
	return b.String(), nil
}
