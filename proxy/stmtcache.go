package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"
)

// An unnamed statement is parsed, analysed and planned by PostgreSQL at
// every Parse, and many clients send every statement that way (pgbench -M
// extended, node-postgres, lib/pq, JDBC below its prepare threshold). A
// rewrite makes that planning dearer: the derived table, the filter and
// the masks are planned again each time. So mandate pays back what it
// adds: an unnamed Parse whose text it rewrote is prepared upstream, at its
// second Parse on a connection, under a name of mandate's own, and later
// Parses of the same rewrite use that statement. The client still sends Parse, Bind,
// Describe as before and sees the same answers; PostgreSQL plans the
// statement as it plans any prepared one (custom plans first, then a
// generic plan when it costs no more; plan_cache_mode decides).
//
// Nothing is decided differently: every Parse and Bind is decided as
// before, and the cache is keyed by the text the decision produced, so a
// revoked grant or a changed scope yields another text (or a refusal),
// never a statement prepared under the old one. Statements the client
// names itself, and any text mandate did not change, go as they are.

// stmtPrefix starts every cached statement's name: random per process, so
// that no client can name one (names are also checked, see nameTaken), and
// kept out of what clients see (hideCacheNames).
var stmtPrefix = "mandate_" + rand.Text()[:12] + "_"

// hideCacheNames returns an ErrorResponse or NoticeResponse msg with each
// cached statement's name in it emptied: the client sent the unnamed
// statement, and PostgreSQL names that "" (bind message supplies 0
// parameters, but prepared statement "" requires 1). A name seen would
// tell the prefix, and the counter after it the next names (red team
// round 10, K2).
func hideCacheNames(msg []byte) []byte {
	i := bytes.Index(msg, stmtPrefixBytes)
	if i < 0 {
		return msg
	}
	out := make([]byte, 0, len(msg))
	for ; i >= 0; i = bytes.Index(msg, stmtPrefixBytes) {
		out = append(out, msg[:i]...)
		msg = msg[i+len(stmtPrefixBytes):]
		for len(msg) > 0 && '0' <= msg[0] && msg[0] <= '9' {
			msg = msg[1:]
		}
	}
	out = append(out, msg...)
	binary.BigEndian.PutUint32(out[1:5], uint32(len(out)-1))
	return out
}

var stmtPrefixBytes = []byte(stmtPrefix)

// Outcomes of a message mandate watches (a cached statement's Parse, a
// client's Parse, Bind or statement; see sessionSettings.sent): in flight,
// done (ParseComplete seen for a cached statement: prepared), or failed
// (an error, or skipped after an earlier one).
const (
	stmtPending int32 = iota
	stmtReady
	stmtFailed
)

// cachedStmt is one statement mandate prepared upstream.
type cachedStmt struct {
	name  string
	key   string
	query string // the rewritten text, to prepare it again
	oids  []uint32
	state atomic.Int32 // set by the upstream loop when its answer comes
	used  uint64
}

// stmtCache holds an upstream connection's cached statements. Only the
// client loop of the session owning the connection uses it (state aside);
// reset empties it with the rest of the backend's state.
type stmtCache struct {
	entries map[string]*cachedStmt // by key: text and parameter types
	byName  map[string]*cachedStmt
	// once holds keys parsed once and not prepared: a statement is
	// prepared at its second Parse, so that clients sending each text once
	// (constants inlined, as JDBC's Statement does) do not pay for two
	// Parses and churn the cache. Emptied when it reaches seenLimit.
	once map[string]struct{}
	// never holds keys whose prepared form PostgreSQL refused, so that
	// their simple queries go as text (simpleprep.go).
	never   map[string]struct{}
	tick    uint64
	next    uint64
	scratch []byte
}

// seenLimit bounds stmtCache.once, per cached statement allowed.
const seenLimit = 4

// key is a Parse's text and parameter types, and the session's settings
// for reading constants (settingValues.literals), as one string: a
// statement PostgreSQL analysed under another TimeZone or DateStyle read
// its constants so (red team round 34: '2024-03-03' kept the old zone's
// midnight). The common case (no declared types, settings as the session
// began) is the text itself, without allocating.
func (c *stmtCache) key(query string, oids []uint32, literals uint64) string {
	if len(oids) == 0 && literals == 0 {
		return query
	}
	b := append(c.scratch[:0], query...)
	b = append(b, 0)
	for _, o := range oids {
		b = binary.BigEndian.AppendUint32(b, o)
	}
	if literals != 0 {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, literals)
	}
	c.scratch = b
	return string(b)
}

func (c *stmtCache) get(key string) *cachedStmt {
	e := c.entries[key]
	if e != nil {
		c.tick++
		e.used = c.tick
	}
	return e
}

// again reports whether key was parsed before, and otherwise notes it.
func (c *stmtCache) again(key string, max int) bool {
	if _, ok := c.once[key]; ok {
		delete(c.once, key)
		return true
	}
	if c.once == nil || len(c.once) >= seenLimit*max {
		c.once = map[string]struct{}{}
	}
	c.once[key] = struct{}{}
	return false
}

// refuse notes that key's prepared form failed; refused reports it.
func (c *stmtCache) refuse(key string, max int) {
	if c.never == nil || len(c.never) >= seenLimit*max {
		c.never = map[string]struct{}{}
	}
	c.never[key] = struct{}{}
}

func (c *stmtCache) refused(key string) bool {
	_, ok := c.never[key]
	return ok
}

// add records a statement about to be prepared under key (c.key of its
// text and types), evicting the least recently used one beyond max;
// evicted is its name, to close upstream.
func (c *stmtCache) add(key, query string, oids []uint32, max int) (e *cachedStmt, evicted string) {
	if c.entries == nil {
		c.entries, c.byName = map[string]*cachedStmt{}, map[string]*cachedStmt{}
	}
	if len(c.entries) >= max {
		var old *cachedStmt
		for _, o := range c.entries {
			if old == nil || o.used < old.used {
				old = o
			}
		}
		c.remove(old)
		evicted = old.name
	}
	c.next++
	c.tick++
	e = &cachedStmt{name: stmtPrefix + strconv.FormatUint(c.next, 10), key: key, query: query,
		oids: append([]uint32(nil), oids...), used: c.tick}
	c.entries[e.key], c.byName[e.name] = e, e
	return e, evicted
}

func (c *stmtCache) remove(e *cachedStmt) {
	delete(c.entries, e.key)
	delete(c.byName, e.name)
}

// holds reports whether e is still cached: not evicted or dropped.
func (c *stmtCache) holds(e *cachedStmt) bool { return c.byName[e.name] == e }

// has reports whether name is one of the cached statements' names.
func (c *stmtCache) has(name string) bool { return c.byName[name] != nil }

// forget drops name (every statement when ""): the client deallocated it
// upstream, so it must be prepared again before its next use.
func (c *stmtCache) forget(name string) {
	if name == "" {
		clear(c.entries)
		clear(c.byName)
		clear(c.once)
		return
	}
	if e := c.byName[name]; e != nil {
		c.remove(e)
	}
}

// cacheParse serves an unnamed Parse of a rewritten text (m, already
// rewritten) from the connection's statement cache. A prepared statement
// turns the Parse into an empty one, which still answers ParseComplete in
// its place, and the session's Bind and Describe of the unnamed statement
// go to the cached one. Otherwise the statement is prepared under its name
// right after its second Parse (s.prepareAfter; hidden from the client),
// for the next ones to use: after, so that a failure is the client's own Parse's,
// which drops the unnamed statement as PostgreSQL's failed Parse does.
func (s *session) cacheParse(m *pgproto3.Parse) error {
	max := s.srv.cfg.UpstreamStatementCache
	if max <= 0 || s.txStatus.Load() == 'E' || !s.settings.settled() {
		// In a failed transaction the client's Parse fails (25P02), and an
		// empty one would not: let it. Behind unanswered segments the
		// settings that key the cache are a guess.
		return nil
	}
	c := &s.upstream.stmts
	if err := s.dropStaleStatements(); err != nil {
		return err
	}
	key := c.key(m.Query, m.ParameterOIDs, s.settings.current().literals)
	e := c.get(key)
	if e == nil && !c.again(key, max) {
		return nil
	}
	if e != nil {
		switch e.state.Load() {
		case stmtReady:
			s.srv.metrics.stmtCacheHit.Inc()
			s.unnamed = e
			m.Query, m.ParameterOIDs = "", nil
			return nil
		case stmtPending:
			return nil // its answer is still to come: this Parse goes as it is
		}
		c.remove(e) // failed: prepare it again under a new name
	}
	e, evicted := c.add(key, m.Query, m.ParameterOIDs, max)
	e.state.Store(stmtPending)
	s.prepareAfter = e
	if evicted != "" {
		return s.injectClose('S', evicted)
	}
	return nil
}

// dropStaleStatements closes every cached statement once the upstream has
// said one no longer fits its relation ("cached plan must not change
// result type", after the owner changed a column's type): re-Parsing the
// same text would otherwise fail the same way for the rest of the
// session, where PostgreSQL analyses an unnamed Parse afresh.
func (s *session) dropStaleStatements() error {
	u := s.upstream
	if !u.stale.Swap(false) {
		return nil
	}
	for name := range u.stmts.byName {
		if err := s.injectClose('S', name); err != nil {
			return err
		}
	}
	u.stmts.forget("")
	s.unnamed = nil
	return nil
}

// injectPrepare queues e's Parse, hidden from the client when it succeeds.
func (s *session) injectPrepare(e *cachedStmt) error {
	e.state.Store(stmtPending)
	u := s.upstream
	var err error
	if u.wbuf, err = (&pgproto3.Parse{Name: e.name, Query: e.query, ParameterOIDs: e.oids}).Encode(u.wbuf); err != nil {
		return err
	}
	s.hideAnswer('1', &e.state)
	s.srv.metrics.stmtCachePrepared.Inc()
	return nil
}

// injectClose queues a Close of a statement or portal (typ 'S' or 'P'),
// hidden from the client.
func (s *session) injectClose(typ byte, name string) error {
	var err error
	u := s.upstream
	if u.wbuf, err = (&pgproto3.Close{ObjectType: typ, Name: name}).Encode(u.wbuf); err != nil {
		return err
	}
	s.hideAnswer('3', nil)
	return nil
}

// unnamedStatement is the upstream name a Bind or Describe of the unnamed
// statement goes to: the cached statement its Parse used, or, when the
// cache has dropped that one since (DEALLOCATE ALL, DISCARD ALL), one of
// the same text, prepared first if need be. The name is always a new one:
// the drop may have failed upstream (in an aborted transaction, say) and
// left the old statement there. "" when the unnamed statement is the
// upstream's own.
func (s *session) unnamedStatement() (string, error) {
	e := s.unnamed
	if e == nil {
		return "", nil
	}
	c := &s.upstream.stmts
	if !c.holds(e) {
		same := c.get(e.key)
		if same == nil || same.state.Load() == stmtFailed {
			if same != nil {
				c.remove(same)
			}
			var evicted string
			same, evicted = c.add(e.key, e.query, e.oids, s.srv.cfg.UpstreamStatementCache)
			if evicted != "" {
				if err := s.injectClose('S', evicted); err != nil {
					return "", err
				}
			}
			if err := s.injectPrepare(same); err != nil {
				return "", err
			}
		}
		s.unnamed = same
	}
	return s.unnamed.name, nil
}
