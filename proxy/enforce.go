package proxy

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/policy/identity"
	"github.com/mandate-proxy/mandate/policy/store"
	"github.com/mandate-proxy/mandate/rewrite"
)

// Catalogs gives the current catalog of the upstream and its version, and
// reloads it after DDL.
type Catalogs interface {
	Current() (*rewrite.Catalog, uint64)
	Refresh(ctx context.Context) error
}

// Enforcer is everything a session needs to decide statements: the policy
// engine, the live state, the catalog and the identity verifier. A Server
// without one runs in transparent mode.
type Enforcer struct {
	Engine   *policy.Engine
	State    *store.State
	Catalogs Catalogs
	Verifier *identity.Verifier // bearer tokens (auth jwt, SET mandate.token); nil: none accepted
	Rewrite  *rewrite.Options
	// AssumeAllowed lists the login principals that may name the end user
	// per transaction with SET [LOCAL] mandate.token.
	AssumeAllowed map[string]bool
	// LazyState skips the per-statement store sync (State.Sync) for scopes
	// that depend on live state (actors, a purpose): a revocation then
	// applies once its notification arrives (milliseconds), not strictly
	// from the next statement. Off by default.
	LazyState bool
	Now       func() time.Time

	cache rewriteCache
	infos atomic.Pointer[relationInfos]

	optsOnce sync.Once
	opts     *rewrite.Options // Rewrite, or the defaults built once (the allow-list is a map)
}

// rewriteOptions are the rewriter's options, built once.
func (e *Enforcer) rewriteOptions() *rewrite.Options {
	e.optsOnce.Do(func() {
		o := rewrite.Options{}
		if e.Rewrite != nil {
			o = *e.Rewrite
		}
		if o.Functions == nil {
			o.Functions = rewrite.DefaultFunctions()
		}
		if o.Derived == nil {
			o.Derived = &rewrite.DerivedCache{}
		}
		e.opts = &o
	})
	return e.opts
}

// relationInfos memoizes the engine's view of the catalog's relations,
// for one catalog: a repeated statement must not rebuild column lists.
type relationInfos struct {
	cat    *rewrite.Catalog
	byName sync.Map // string → policy.RelationInfo
}

func (e *Enforcer) relationInfo(cat *rewrite.Catalog, name string) policy.RelationInfo {
	ri := e.infos.Load()
	if ri == nil || ri.cat != cat {
		ri = &relationInfos{cat: cat}
		e.infos.Store(ri)
	}
	if v, ok := ri.byName.Load(name); ok {
		return v.(policy.RelationInfo)
	}
	info := relationInfo(cat, name)
	ri.byName.Store(name, info)
	return info
}

func (e *Enforcer) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// principal is who a statement runs as: the subject and the actor chain.
type principal struct {
	Subject string
	Actors  []policy.Actor
	Scopes  []string
	Claims  map[string]any
	Method  string // "jwt", "scram", "trust"
	Expires time.Time
}

// describe names p for messages: the subject, and who connected for it.
func (p principal) describe() string {
	s := strconv.Quote(p.Subject)
	if n := len(p.Actors); n > 0 {
		s = strconv.Quote(p.Actors[n-1].ID) + " acting for " + s
	}
	return s
}

func fromIdentity(id identity.Identity) principal {
	return principal{Subject: id.Subject, Actors: id.Actors, Scopes: id.Scopes, Claims: id.Claims, Method: "jwt", Expires: id.ExpiresAt}
}

// purpose is the declared purpose of use: SET mandate.purpose wins over the
// token's "purpose" claim.
func (p principal) purpose(set string) string {
	if set != "" {
		return set
	}
	if v, ok := p.Claims["purpose"].(string); ok {
		return v
	}
	return ""
}

// decision is the outcome of one statement: the SQL to forward, or a
// refusal; and what the audit log needs.
type decision struct {
	sql    string
	result rewrite.Result
	scope  policy.Scope
	entry  *cacheEntry // for the fingerprint; nil when no statement parsed
	err    error
	// setting is a handled SET or RESET of mandate.*, to check and apply
	// when it runs (decideSetting).
	setting *rewrite.Setting
}

// fingerprint identifies the decided statement's shape for audit records.
func (d decision) fingerprint() string {
	if d.entry == nil {
		return ""
	}
	d.entry.fpOnce.Do(func() { d.entry.fp = rewrite.Fingerprint(d.entry.sql) })
	return d.entry.fp
}

// decide builds the statement's scope from the session's current principal
// and the live state, asks the engine for grants and the rewriter for SQL.
// Every input is read anew per statement, so a revocation, an expiry or a
// withdrawn consent applies to the very next one.
func (e *Enforcer) decide(s *session, sql string) decision {
	return e.decideTyped(s, sql, nil)
}

// decideTyped decides a Parse's text with the parameter types the client
// declared (paramOIDs): PostgreSQL resolves operators with them, and a
// declared type unlike a column's can put a cast on the column.
func (e *Enforcer) decideTyped(s *session, sql string, paramOIDs []uint32) decision {
	if a := s.srv.cfg.Audit; a != nil && a.Err() != nil {
		// Every decision is audited, or not made: a log that can no longer
		// be written fails closed.
		return decision{err: errAuditBroken}
	}
	v := s.settings.current()
	c := caller{
		principal: v.principal(s.login), purpose: v.purpose, searchPath: v.path,
		clientAddr: s.clientHost, sessionID: s.sessionID(), upstreamUser: s.srv.upstream.User,
		paramTypes: paramTypeNames(paramOIDs),
	}
	d := e.decideFor(c, sql, s.srv.metrics)
	if d.err == nil {
		// Decided as if every statement pipelined before it succeeds; an
		// unqualified function or operator resolves upstream by the path in
		// effect there, so it must pass under every path a failure may
		// leave (red team round 44b: a SET search_path rolled back by the
		// COMMIT of a failed block let evil.sqrt run for sqrt(4)).
		// Relations resolve as decided (the rewrite names their schemas).
		for _, path := range s.settings.pathsInDoubt() {
			alt := c
			alt.functionPath, alt.functionPathSet = path, true
			if a := e.decideFor(alt, sql, nil); a.err != nil {
				d.err = a.err
				break
			}
		}
	}
	return d
}

// builtinTypes names PostgreSQL's built-in types by OID.
var builtinTypes = pgtype.NewMap()

// paramTypeNames names declared parameter types as rewrite.Session wants
// them: "" for none (OID 0), "int8" or "int8[]", "?" for an unknown type.
func paramTypeNames(oids []uint32) []string {
	var names []string
	for i, oid := range oids {
		if oid == 0 {
			continue
		}
		if names == nil {
			names = make([]string, len(oids))
		}
		t, ok := builtinTypes.TypeForOID(oid)
		switch {
		case !ok:
			names[i] = "?"
		case strings.HasPrefix(t.Name, "_"):
			names[i] = t.Name[1:] + "[]"
		default:
			names[i] = t.Name
		}
	}
	return names
}

// errAuditBroken refuses statements once the audit log failed a write.
var errAuditBroken = &Error{Code: "58030", Msg: "the audit log cannot be written: mandate refuses statements until it restarts with a writable audit log"}

// caller is what a decision needs to know of the session it is for.
type caller struct {
	principal  principal
	purpose    string // SET mandate.purpose
	searchPath []string
	// functionPath, when functionPathSet, is the path functions, operators
	// and types resolve by instead (rewrite.Session.FunctionPath; nil: the
	// upstream's default).
	functionPath    []string
	functionPathSet bool
	clientAddr      string // the client's host, without the port: policies care about the address, and grants cached per port would be per connection
	sessionID       string
	upstreamUser    string   // substituted for "$user" in the search path
	paramTypes      []string // declared at Parse (rewrite.Session.ParamTypes)
}

func (e *Enforcer) decideFor(c caller, sql string, m *Metrics) decision {
	now := e.now()
	p := c.principal
	expired := !p.Expires.IsZero() && !now.Before(p.Expires)
	if !e.LazyState && (len(p.Actors) > 0 || p.purpose(c.purpose) != "") {
		// Delegations, agent registrations and consents decide this scope:
		// see every change committed before this statement.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = e.State.Sync(ctx) // on failure, Check bounds the staleness
		cancel()
	}
	snap, err := e.State.Check(now)
	if err != nil {
		// No scope without the state; the refusal's record names the caller.
		return decision{err: err, scope: policy.Scope{Subject: p.Subject, Actors: p.Actors, Purpose: p.purpose(c.purpose)}}
	}
	scope := e.scope(c, snap, now)
	cat, catVersion := e.Catalogs.Current()
	if cat == nil {
		return decision{err: &Error{Code: "57P03", Msg: "the upstream catalog is not loaded yet"}, scope: scope}
	}
	sess := rewrite.Session{User: c.upstreamUser, SearchPath: c.searchPath, ParamTypes: c.paramTypes}
	funcPath := ""
	if c.functionPathSet {
		sess.FunctionPath = c.functionPath
		if sess.FunctionPath == nil {
			sess.FunctionPath = cat.SearchPath
		}
		if sess.FunctionPath == nil {
			sess.FunctionPath = []string{"$user", "public"} // PostgreSQL's default
		}
		funcPath = "\x01" + searchPathKey(sess.FunctionPath)
	}
	grants := func(names []string) (*grant.Set, error) {
		infos := make([]policy.RelationInfo, 0, len(names))
		for _, n := range names {
			infos = append(infos, e.relationInfo(cat, n))
		}
		return e.Engine.GrantSet(scope, infos, snap.Version())
	}
	start := time.Now()
	key := cacheKey{sql: sql, searchPath: searchPathKey(sess.SearchPath) + funcPath, catalog: catVersion, params: strings.Join(c.paramTypes, ",")}
	res, ent, how, err := e.cache.rewrite(key, cat, sess, grants, e.rewriteOptions())
	if m != nil {
		m.rewriteSeconds.Observe(time.Since(start).Seconds())
		m.rewriteCache[how].Inc()
	}
	if expired && (err != nil || !transactionControl(res)) {
		return decision{err: errTokenExpired, scope: scope, entry: ent}
	}
	return decision{sql: res.SQL, result: res, scope: scope, entry: ent, err: err}
}

// errTokenExpired refuses the statements of an identity whose token expired.
var errTokenExpired = &Error{Code: codeInvalidAuthSpec, Msg: "the identity token has expired; reconnect or SET mandate.token to a fresh one"}

// transactionControl reports whether res only ends, begins or marks
// transactions: statements that touch no data, which an identity whose
// token expired may still run, so that a pooled connection can ROLLBACK
// the transaction the expiry aborted.
func transactionControl(res rewrite.Result) bool {
	for _, st := range res.Statements {
		if st.Kind != rewrite.KindTransaction {
			return false
		}
	}
	return len(res.Statements) > 0
}

// Explanation is a decision made without a session, for mandate explain.
type Explanation struct {
	Scope  policy.Scope
	Result rewrite.Result
	Err    error
}

// Explain decides sql for subject acting through actors with purpose, as
// the proxy would for a session with the upstream's default search_path.
func (e *Enforcer) Explain(subject string, actors []policy.Actor, purpose, upstreamUser, sql string) Explanation {
	d := e.decideFor(caller{
		principal: principal{Subject: subject, Actors: actors, Method: "explain"},
		purpose:   purpose, clientAddr: "explain", sessionID: "explain", upstreamUser: upstreamUser,
	}, sql, nil)
	return Explanation{Scope: d.scope, Result: d.result, Err: d.err}
}

// scope assembles the policy scope of a caller at now.
func (e *Enforcer) scope(c caller, snap *store.Snapshot, now time.Time) policy.Scope {
	p := c.principal
	sc := policy.Scope{
		Subject:  p.Subject,
		Actors:   p.Actors,
		Consents: snap.Consents(p.Subject),
		Purpose:  p.purpose(c.purpose),
		Context: policy.Context{
			Now: now, ClientAddr: c.clientAddr, AuthMethod: p.Method,
			SessionID: c.sessionID, Scopes: p.Scopes, Claims: p.Claims,
		},
	}
	// The delegation that matters is the subject's to the first delegate
	// of the chain; an agent's registration is looked up by its id.
	for _, a := range p.Actors {
		switch a.Kind {
		case policy.ActorDelegate:
			if sc.Delegation == nil {
				sc.Delegation = snap.Delegation(p.Subject, a.ID, sc.Purpose, now)
			}
		case policy.ActorAgent:
			if sc.Agent == nil {
				sc.Agent = snap.Agent(a.ID)
			}
		}
	}
	// Acting under a delegation is acting for its purpose, unless the
	// statement declares one (which the engine then checks against it).
	if sc.Purpose == "" && sc.Delegation != nil {
		sc.Purpose = sc.Delegation.Purpose
	}
	return sc
}

// relationInfo describes a relation to the engine from the catalog.
func relationInfo(cat *rewrite.Catalog, qualified string) policy.RelationInfo {
	info := policy.RelationInfo{Name: qualified}
	schema, name, _ := strings.Cut(qualified, ".")
	if sch := cat.Schemas[schema]; sch != nil {
		if t := sch.Tables[name]; t != nil {
			for _, c := range t.Columns {
				info.Columns = append(info.Columns, policy.ColumnInfo{Name: c.Name, Type: c.Type, GeneratedFrom: c.GeneratedFrom})
			}
		}
	}
	return info
}

// rewriteCache maps a statement (text, search_path, catalog version) to its
// parse and the relations it touches, and under that, the grants version to
// the rewritten result. A repeated statement costs two map lookups and the
// engine's warm grant lookup, not a parse.
//
// A statement new to it may still differ from one rewritten before only in
// its constants: templates holds, by rewrite.TemplateKey, the rewrites that
// hold for all such statements, so those cost a scan, not a parse.
type rewriteCache struct {
	mu        sync.Mutex
	entries   map[cacheKey]*cacheEntry
	templates map[cacheKey]*cacheEntry // results hold templates only
}

type cacheKey struct {
	sql        string
	searchPath string
	catalog    uint64
	params     string // declared parameter types, comma-separated
}

type cacheEntry struct {
	sql       string
	fpOnce    sync.Once
	fp        string   // the statement's fingerprint, computed when first audited
	relations []string // nil until the first rewrite asked for grants
	asked     bool
	results   map[uint64]cachedResult // by grants version
}

// cacheOutcome is how the cache served a statement.
type cacheOutcome int

const (
	cacheHit      cacheOutcome = iota // the same text, rewritten before
	cacheTemplate                     // the same text but its constants
	cacheMiss                         // parsed and rewritten
	numCacheOutcomes
)

func (o cacheOutcome) String() string {
	return [...]string{"hit", "template", "miss"}[o]
}

type cachedResult struct {
	res  rewrite.Result
	err  error
	tmpl *rewrite.Template // in templates' entries
}

const (
	maxCacheEntries    = 8192
	maxResultsPerEntry = 32
	noGrantsVersion    = 0
)

func (c *rewriteCache) rewrite(k cacheKey, cat *rewrite.Catalog, sess rewrite.Session, grants func([]string) (*grant.Set, error), opts *rewrite.Options) (rewrite.Result, *cacheEntry, cacheOutcome, error) {
	c.mu.Lock()
	if c.entries == nil {
		c.entries, c.templates = map[cacheKey]*cacheEntry{}, map[cacheKey]*cacheEntry{}
	}
	ent := c.entries[k]
	var asked bool
	var rels []string
	if ent != nil {
		asked, rels = ent.asked, ent.relations
	}
	c.mu.Unlock()

	// Grants for the relations this statement is known to touch decide
	// which cached rewrite applies.
	version := uint64(noGrantsVersion)
	var set *grant.Set
	if asked && len(rels) > 0 {
		var err error
		if set, err = grants(rels); err != nil {
			return rewrite.Result{}, ent, cacheMiss, err
		}
		version = set.Version
	}
	if asked {
		c.mu.Lock()
		r, ok := ent.results[version]
		c.mu.Unlock()
		if ok {
			return r.res, ent, cacheHit, r.err
		}
	}
	// Not this text under these grants: perhaps a template for it.
	lits, haveLits := rewrite.TemplateKey(k.sql)
	tk := k
	tk.sql = lits.Key
	if haveLits {
		if res, tent, ok, err := c.instantiate(k.sql, tk, lits, grants); ok || err != nil {
			return res, tent, cacheTemplate, err
		}
	}
	if ent == nil { // made only now: most new texts are a template's
		ent = &cacheEntry{sql: k.sql, results: map[uint64]cachedResult{}}
	}

	var askedFor []string
	src := rewrite.GrantFunc(func(names []string) (*grant.Set, error) {
		askedFor = names
		if set != nil && equalStrings(names, rels) {
			return set, nil
		}
		s, err := grants(names)
		if err == nil {
			version = s.Version
		}
		return s, err
	})
	// A miss parses afresh and lets the rewriter change its private tree
	// in place: cheaper than keeping a parse to clone on every miss.
	res, err := rewrite.RewriteSQL(ent.sql, cat, sess, src, opts)
	var grantErr *policy.Error
	var storeErr *store.Error
	if errors.As(err, &grantErr) && grantErr.Code != policy.CodeInsufficientPrivilege || errors.As(err, &storeErr) {
		return res, ent, cacheMiss, err // transient: never cached
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ent.asked, ent.relations = true, askedFor
	if len(ent.results) >= maxResultsPerEntry {
		clear(ent.results)
	}
	ent.results[version] = cachedResult{res: res, err: err}
	if c.entries[k] == nil {
		c.entries[k] = ent
		evict(c.entries, k)
	}
	if err == nil && res.Template != nil && haveLits {
		tent := c.templates[tk]
		if tent == nil {
			tent = &cacheEntry{sql: k.sql, asked: true, relations: askedFor, results: map[uint64]cachedResult{}}
			c.templates[tk] = tent
			evict(c.templates, tk)
		}
		if len(tent.results) >= maxResultsPerEntry {
			clear(tent.results)
		}
		tent.results[version] = cachedResult{tmpl: res.Template}
	}
	return res, ent, cacheMiss, err
}

// instantiate serves sql from the template stored under tk, if
// there is one for the current grants version.
func (c *rewriteCache) instantiate(sql string, tk cacheKey, lits rewrite.Literals, grants func([]string) (*grant.Set, error)) (rewrite.Result, *cacheEntry, bool, error) {
	c.mu.Lock()
	tent := c.templates[tk]
	c.mu.Unlock()
	if tent == nil {
		return rewrite.Result{}, nil, false, nil
	}
	version := uint64(noGrantsVersion)
	if len(tent.relations) > 0 {
		set, err := grants(tent.relations)
		if err != nil {
			return rewrite.Result{}, tent, false, err
		}
		version = set.Version
	}
	c.mu.Lock()
	r, ok := tent.results[version]
	c.mu.Unlock()
	if !ok {
		return rewrite.Result{}, nil, false, nil
	}
	res, ok := r.tmpl.Instantiate(sql, lits)
	if !ok {
		return rewrite.Result{}, nil, false, nil
	}
	return res, tent, true, nil
}

// evict keeps m under maxCacheEntries, sparing keep, the key just added.
func evict(m map[cacheKey]*cacheEntry, keep cacheKey) {
	if len(m) <= maxCacheEntries {
		return
	}
	for key := range m { // map order is random: a cheap random eviction
		if key != keep {
			delete(m, key)
		}
		if len(m) < maxCacheEntries*3/4 {
			return
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// StateConsents answers the engine's consent questions from the live state.
type StateConsents struct{ State *store.State }

// ConsentedSubjects lists the subjects consenting to purpose now.
func (c StateConsents) ConsentedSubjects(purpose string) ([]string, error) {
	snap, err := c.State.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap.ConsentedSubjects(purpose), nil
}
