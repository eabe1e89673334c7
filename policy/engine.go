package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-proxy/mandate/grant"
)

// Options configures an Engine.
type Options struct {
	// Consents answers which subjects consent to a purpose; nil: nobody does.
	Consents ConsentIndex
	// AllowUnprotected lets relations the Cedar schema does not declare
	// through unfiltered (delegation and agent scopes still apply). The
	// default denies them (SPEC §2 rule 4).
	AllowUnprotected bool
	// CacheEntries bounds the grant cache; 0 means 65536.
	CacheEntries int
}

// Engine decides grants against the current snapshot of the policy sources.
// It is safe for concurrent use; Reload swaps the snapshot atomically, so a
// decision sees either the old set or the new one, never a mix.
type Engine struct {
	src  Sources
	opts Options

	snap     atomic.Pointer[Snapshot]
	reloadMu sync.Mutex
	version  uint64 // guarded by reloadMu
	stamp    string // guarded by reloadMu: the sources' metadata at the last reload

	cache       grantCache
	constraints sync.Map // row constraint text → constraintResult
}

type constraintResult struct {
	p   *cedarPolicy
	err error
}

// Open loads the sources and returns an engine serving them.
func Open(src Sources, opts Options) (*Engine, error) {
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 1 << 16
	}
	e := &Engine{src: src, opts: opts}
	e.cache.limit = opts.CacheEntries
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload loads the sources again. If they are invalid it keeps serving the
// previous snapshot and returns the error; the next statement after a
// successful reload is decided by the new policies.
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	// Stamped before reading, so an edit racing the load triggers another.
	e.stamp = e.src.stamp()
	s, err := Load(e.src)
	if err != nil {
		return err
	}
	e.version++
	s.Version = e.version
	e.snap.Store(s)
	// Entries of older snapshots can no longer be hit; drop them.
	e.cache.reset()
	return nil
}

// Snapshot returns the snapshot currently in force.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Grants computes the grant of one relation for scope, bypassing the cache
// (for explain and tests; statements go through GrantSet).
func (e *Engine) Grants(scope Scope, rel RelationInfo) (*grant.Relation, error) {
	ev, err := e.prepare(e.snap.Load(), &scope)
	if err != nil {
		return nil, err
	}
	return ev.relation(rel), nil
}

// GrantSet returns the grants of scope for a statement's relations.
// stateVersion identifies the live state (delegations, consents, agents) the
// scope was read from: the store must change it whenever that state
// changes, since cached grants are keyed by it.
//
// Set.Version is a digest of the grants themselves, so it changes whenever
// any input that changes them does (policies, state, scope, catalog, the
// clock crossing a delegation boundary), and equal grants share rewrites.
// The returned grants are shared: callers must not modify them.
func (e *Engine) GrantSet(scope Scope, rels []RelationInfo, stateVersion uint64) (*grant.Set, error) {
	snap := e.snap.Load()
	now := scope.now()
	from, until := scope.window(now)
	key := make([]byte, 0, 512)
	key = binary.BigEndian.AppendUint64(key, snap.Version)
	key = binary.BigEndian.AppendUint64(key, stateVersion)
	key = scope.appendFingerprint(key)
	// Outcomes on either side of a delegation boundary are different entries.
	if !from.IsZero() {
		key = binary.BigEndian.AppendUint64(key, uint64(from.UnixNano()))
	}
	prefix := len(key)

	// A statement's relations, all at once: a repeated statement costs one
	// lookup here (the set is shared and read-only, like its relations).
	// '#' keeps these keys apart from the per-relation ones ('|').
	key = append(key, '#')
	for _, rel := range rels {
		key = appendRelation(key, rel)
	}
	if ent, ok := e.cache.get(key, now); ok {
		return ent.set, nil
	}
	setKey := string(key)

	set := &grant.Set{Relations: make(map[string]*grant.Relation, len(rels))}
	digests := make([]relationDigest, 0, len(rels))
	var ev *evaluation
	for _, rel := range rels {
		key = appendRelation(key[:prefix], rel)
		ent, ok := e.cache.get(key, now)
		if !ok {
			if ev == nil {
				sc := scope // only a miss moves the scope to the heap
				var err error
				if ev, err = e.prepare(snap, &sc); err != nil {
					return nil, err
				}
			}
			r := ev.relation(rel)
			ent = &cacheEntry{rel: r, digest: sha256.Sum256([]byte(FormatRelation(r))), from: from, until: until}
			e.cache.put(string(key), ent)
		}
		set.Relations[rel.Name] = ent.rel
		digests = append(digests, relationDigest{rel.Name, &ent.digest})
	}
	sort.Slice(digests, func(i, j int) bool { return digests[i].name < digests[j].name })
	h := sha256.New()
	for _, d := range digests {
		h.Write(d.sum[:])
	}
	set.Version = binary.BigEndian.Uint64(h.Sum(nil))
	e.cache.put(setKey, &cacheEntry{set: set, from: from, until: until})
	return set, nil
}

type relationDigest struct {
	name string
	sum  *[32]byte
}

// rowConstraint parses a delegation row constraint once per text.
func (e *Engine) rowConstraint(cond string) (*cedarPolicy, error) {
	if r, ok := e.constraints.Load(cond); ok {
		cr := r.(constraintResult)
		return cr.p, cr.err
	}
	p, err := parseCondition(cond)
	e.constraints.Store(cond, constraintResult{p, err})
	return p, err
}

// window is the interval around now in which the scope's time-dependent
// checks (delegation and agent windows) keep their outcome: a cached grant
// is only served inside it. Zero bounds are open.
func (sc *Scope) window(now time.Time) (from, until time.Time) {
	var bounds []time.Time
	if d := sc.Delegation; d != nil {
		bounds = append(bounds, d.NotBefore, d.ExpiresAt, d.RevokedAt)
	}
	if sc.Agent != nil {
		bounds = append(bounds, sc.Agent.Disabled)
	}
	for _, b := range bounds {
		switch {
		case b.IsZero():
		case !now.Before(b):
			if from.IsZero() || b.After(from) {
				from = b
			}
		default:
			if until.IsZero() || b.Before(until) {
				until = b
			}
		}
	}
	return from, until
}

// appendFingerprint appends every part of the scope a grant depends on,
// unambiguously (length-prefixed). The clock and the session id are left
// out: the clock is handled by the cache window, the session id is for
// audit only.
func (sc *Scope) appendFingerprint(b []byte) []byte {
	str := func(s string) { b = strconv.AppendInt(b, int64(len(s)), 10); b = append(b, ':'); b = append(b, s...) }
	strs := func(ss []string, sorted bool) {
		if sorted && !slices.IsSorted(ss) {
			ss = slices.Sorted(slices.Values(ss))
		}
		b = strconv.AppendInt(b, int64(len(ss)), 10)
		b = append(b, '[')
		for _, s := range ss {
			str(s)
		}
	}
	tm := func(t time.Time) {
		if t.IsZero() {
			b = append(b, 'z')
			return
		}
		b = strconv.AppendInt(b, t.UnixNano(), 10)
		b = append(b, ';')
	}
	acts := func(as []grant.Action) {
		ss := make([]string, len(as))
		for i, a := range as {
			ss[i] = string(a)
		}
		strs(ss, true)
	}
	str(sc.Subject)
	b = strconv.AppendInt(b, int64(len(sc.Actors)), 10)
	for _, a := range sc.Actors {
		str(a.ID)
		str(string(a.Kind))
	}
	if d := sc.Delegation; d != nil {
		b = append(b, 'D')
		str(d.ID)
		str(d.Grantor)
		str(d.Delegate)
		strs(d.Tables, true)
		acts(d.Actions)
		strs(d.Columns, true)
		rels := make([]string, 0, len(d.RowConstraint))
		for rel := range d.RowConstraint {
			rels = append(rels, rel)
		}
		slices.Sort(rels)
		for _, rel := range rels {
			str(rel)
			str(d.RowConstraint[rel])
		}
		str(d.Purpose)
		tm(d.NotBefore)
		tm(d.ExpiresAt)
		tm(d.RevokedAt)
	}
	if ag := sc.Agent; ag != nil {
		b = append(b, 'A')
		str(ag.ID)
		str(ag.Owner)
		strs(ag.Tables, true)
		acts(ag.Actions)
		strs(ag.Masked, true)
		tm(ag.Disabled)
	}
	strs(sc.Consents, true)
	str(sc.Purpose)
	str(sc.Context.ClientAddr)
	str(sc.Context.AuthMethod)
	strs(sc.Context.Scopes, true)
	if len(sc.Context.Claims) > 0 {
		keys := make([]string, 0, len(sc.Context.Claims))
		for k := range sc.Context.Claims {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			str(k)
			str(fmt.Sprintf("%#v", sc.Context.Claims[k]))
		}
	}
	return b
}

// appendRelation appends the relation's name and catalog shape: a column
// added or retyped is a different relation to the cache.
func appendRelation(b []byte, rel RelationInfo) []byte {
	b = append(b, '|')
	b = append(b, rel.Name...)
	for _, c := range rel.Columns {
		b = append(b, 0)
		b = append(b, c.Name...)
		b = append(b, 1)
		b = append(b, c.Type...)
	}
	return b
}

// grantCache maps a (snapshot, state, scope, relation) key to a computed
// grant. It is bounded by dropping everything when full: simple, and a
// refill costs one cold decision per key.
type grantCache struct {
	mu      sync.RWMutex
	entries map[string]*cacheEntry
	limit   int
}

type cacheEntry struct {
	rel         *grant.Relation // a relation's entry
	digest      [32]byte
	set         *grant.Set // a statement's entry: all its relations
	from, until time.Time  // the entry holds for from <= now < until (zero: open)
}

func (c *grantCache) get(key []byte, now time.Time) (*cacheEntry, bool) {
	c.mu.RLock()
	ent, ok := c.entries[string(key)]
	c.mu.RUnlock()
	if !ok || (!ent.from.IsZero() && now.Before(ent.from)) || (!ent.until.IsZero() && !now.Before(ent.until)) {
		return nil, false
	}
	return ent, true
}

func (c *grantCache) put(key string, ent *cacheEntry) {
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= c.limit {
		c.entries = make(map[string]*cacheEntry)
	}
	c.entries[key] = ent
	c.mu.Unlock()
}

func (c *grantCache) reset() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}
