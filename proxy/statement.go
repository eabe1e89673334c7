package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/mandate-proxy/mandate/rewrite"
)

// This file is the decided path of the client loop: what a Query or Parse
// becomes before it goes upstream, and how the upstream's answers to what
// mandate injected are put back in the client's terms.
//
// A refusal must reach the client in order (after the answers to earlier
// pipelined messages) and must leave the session exactly as PostgreSQL
// would after an error (an open transaction aborted, the rest of an
// extended-protocol batch skipped until Sync). So mandate does not answer a
// refused statement itself: it forwards a marker statement that fails in
// the upstream with a unique name, and the upstream loop swaps that error
// for the refusal when it passes by.

// markers is a session's table of pending refusals.
type markers struct {
	nonce []byte // random per session: a client cannot forge a marker

	mu      sync.Mutex
	next    uint64
	pending map[uint64]pendingRefusal
	synced  uint64 // ReadyForQuery answers seen
}

// pendingRefusal is a refusal waiting for its marker's error, which comes
// before the end of its segment or never (an earlier error made the
// upstream skip the marker).
type pendingRefusal struct {
	resp    *pgproto3.ErrorResponse
	segment uint64
}

func newMarkers() *markers {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &markers{nonce: []byte("mandate refusal " + hex.EncodeToString(b) + " #"), pending: map[uint64]pendingRefusal{}}
}

// marker registers err's ErrorResponse and returns the SQL that makes the
// upstream fail in its place (at parse analysis, so it fails at Parse in the
// extended protocol and in statement order in a simple query).
func (m *markers) marker(resp *pgproto3.ErrorResponse, segment uint64) string {
	m.mu.Lock()
	m.next++
	n := m.next
	m.pending[n] = pendingRefusal{resp, segment}
	m.mu.Unlock()
	return `SELECT "` + string(m.nonce) + strconv.FormatUint(n, 10) + `"`
}

// swap returns the encoded refusal for an upstream ErrorResponse body that
// carries one of our markers, or nil.
func (m *markers) swap(body []byte) []byte {
	i := bytes.Index(body, m.nonce)
	if i < 0 {
		return nil
	}
	digits := body[i+len(m.nonce):]
	end := 0
	for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
		end++
	}
	n, err := strconv.ParseUint(string(digits[:end]), 10, 64)
	if err != nil {
		return nil
	}
	m.mu.Lock()
	p, ok := m.pending[n]
	delete(m.pending, n)
	m.mu.Unlock()
	if !ok {
		return nil
	}
	out, _ := p.resp.Encode(nil)
	return out
}

// segmentEnded forgets the refusals whose segment is over: their markers
// were skipped, so their errors will never come.
func (m *markers) segmentEnded() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced++
	for n, p := range m.pending {
		if p.segment < m.synced {
			delete(m.pending, n)
		}
	}
}

// settingReplacement is what a handled SET/RESET of mandate.* becomes
// upstream: a statement with the same command tag and transaction
// semantics (SET LOCAL outside a transaction warns, inside an aborted one
// fails). A token's stand-in carries nothing of it; the purpose, which is
// no secret, is set upstream as it is, so that SHOW mandate.purpose
// answers what is in effect by the same rules mandate follows.
func settingReplacement(st rewrite.Setting) string {
	if st.ResetStmt {
		if st.Name == "mandate.purpose" {
			return "RESET mandate.purpose"
		}
		return "RESET mandate.assumed"
	}
	set := "SET "
	if st.Local {
		set = "SET LOCAL "
	}
	if st.Name != "mandate.purpose" {
		return set + "mandate.assumed TO DEFAULT"
	}
	if st.Reset {
		return set + "mandate.purpose TO DEFAULT"
	}
	return set + "mandate.purpose TO " + quoteLiteral(st.Value)
}

// outcome is what became of a client's statement text.
type outcome int

const (
	decided     outcome = iota // rewritten (or passed unchanged) under a decision
	decidedEach                // a multi-statement query decided statement by statement, each queued for audit
	refused                    // replaced by a refusal marker
	handled                    // a mandate.* setting, replaced by a stand-in
)

// decideText turns a statement text from the client into what goes
// upstream: the rewrite, a handled session setting's stand-in, or a
// refusal marker. Refusals are audited here; allowed statements are
// audited when they complete (the caller queues them, except for
// decidedEach). track is set for a simple Query, whose statements run as
// they are forwarded: their effects on the session's settings are recorded
// now (a Parse's, at each Execute), and a query in which a statement
// changes them for later ones is decided statement by statement.
func (s *session) decideText(sql string, track bool, paramOIDs []uint32) (string, decision, outcome) {
	if containsFold(sql, "mandate.") || containsResetAll(sql) {
		if stmts, err := rewrite.Parse(sql); err == nil {
			if st, ok := rewrite.MandateSetting(stmts); ok {
				return s.decideSetting(sql, st, track)
			}
		}
	}
	e := s.srv.cfg.Enforcer
	if s.catalogStale && s.idle() {
		// DDL committed since the last statement: see it before deciding.
		if err := e.Catalogs.Refresh(context.Background()); err != nil {
			s.log.Warn("catalog refresh failed", "err", err)
		}
		s.catalogStale = false
	}
	d := e.decideTyped(s, sql, paramOIDs)
	if parts := s.settingChangingParts(sql, d, track); parts != nil {
		// Decided as a whole, later statements would be decided with the
		// search_path, identity and purpose the query started with.
		allowed, bad := s.decideEach(parts, true)
		if bad.err != nil {
			return s.forwardRefusal(allowed, bad, track), bad, refused
		}
		texts := make([]string, len(allowed))
		for i, a := range allowed {
			s.audit(a)
			s.queueRecords(a, len(a.result.Statements))
			texts[i] = a.sql
		}
		return strings.Join(texts, "; "), decision{}, decidedEach
	}
	if d.err != nil {
		if parts, err := rewrite.Split(sql); err == nil && len(parts) > 1 {
			// As in PostgreSQL, the statements before the refused one run
			// (in the query's implicit transaction) and the rest do not.
			if allowed, bad := s.decideEach(parts, false); bad.err != nil && len(allowed) > 0 {
				allowed, bad = s.checkPrefix(allowed, bad, parts, track)
				return s.forwardRefusal(allowed, bad, track), bad, refused
			}
			// Every part allowed alone: the whole stays refused.
		}
		return s.forwardRefusal(nil, d, track), d, refused
	}
	var ran []*atomic.Int32
	if needsNamedCheck(d) {
		texts := []string{sql}
		if len(d.result.Statements) > 1 {
			texts, _ = rewrite.Split(sql)
		}
		var err error
		if ran, err = s.checkNamed(&d, texts, track); err != nil {
			d.err = err
			return s.forwardRefusal(nil, d, track), d, refused
		}
	}
	s.audit(d)
	if track {
		s.forwarded(d, ran)
	} else {
		for _, st := range d.result.Statements {
			s.noteEffect(st.Effect)
		}
	}
	return d.sql, d, decided
}

// onQuery decides a simple Query in place; sql is the client's text, and
// d its decision when ok (one decision for the whole text).
func (s *session) onQuery(m *pgproto3.Query) (sql string, d decision, ok bool) {
	// A simple Query drops the unnamed statement and the unnamed portal.
	s.unnamed = nil
	delete(s.portals, "")
	sql = m.String
	var o outcome
	m.String, d, o = s.decideText(m.String, true, nil)
	switch o {
	case decided:
		s.queueRecords(d, len(d.result.Statements))
	case decidedEach:
	case handled:
		s.auditSetting()
	default:
		s.auditPlaceholder()
	}
	return sql, d, o == decided
}

// needsNamedCheck reports whether a decision creates, uses or drops a
// SQL prepared statement or cursor (see named.go).
func needsNamedCheck(d decision) bool {
	for _, st := range d.result.Statements {
		switch st.Kind {
		case rewrite.KindPrepare, rewrite.KindExecute, rewrite.KindDeallocate,
			rewrite.KindDeclare, rewrite.KindFetch, rewrite.KindClose, rewrite.KindDiscard:
			return true
		}
	}
	return false
}

// settingChangingParts returns the statements of a simple query when one
// before the last changes the search_path, the identity or the purpose (a
// SET or RESET, or a ROLLBACK, ROLLBACK TO or COMMIT undoing or ending
// one), so that later ones must be decided under the values it leaves; nil
// otherwise.
func (s *session) settingChangingParts(sql string, d decision, track bool) []string {
	if !track {
		return nil
	}
	var effects []rewrite.Effect
	switch {
	case d.err == nil && len(d.result.Statements) > 1:
		for _, st := range d.result.Statements {
			effects = append(effects, st.Effect)
		}
	case d.err != nil && strings.Contains(sql, ";"):
		stmts, err := rewrite.Parse(sql)
		if err != nil {
			return nil
		}
		if effects, err = stmts.Effects(); err != nil {
			return nil // the whole is refused for it
		}
	}
	if len(effects) < 2 || !s.settings.changedBy(effects[:len(effects)-1]) {
		return nil
	}
	parts, err := rewrite.Split(sql)
	if err != nil || len(parts) != len(effects) {
		return nil
	}
	return parts
}

// decideEach decides the statements of a multi-statement query one by one
// until one is refused; bad is that one's decision (bad.err is nil when
// none is). live: each allowed statement runs before the next is decided,
// as in PostgreSQL: it is checked as a named object (named.go) and its
// effects are recorded, so later ones see the settings it leaves.
func (s *session) decideEach(parts []string, live bool) (allowed []decision, bad decision) {
	for _, part := range parts {
		d := s.srv.cfg.Enforcer.decide(s, part)
		var ran []*atomic.Int32
		if d.err == nil && live && needsNamedCheck(d) {
			ran, d.err = s.checkNamed(&d, []string{part}, true)
		}
		if d.err != nil {
			return allowed, d
		}
		allowed = append(allowed, d)
		if live {
			s.forwarded(d, ran)
		}
	}
	return allowed, decision{}
}

// checkPrefix checks the allowed statements before a refused one (decided
// with decideEach, not live) as named objects, in order; the first that
// fails becomes the refused one. track records the effects of those that
// remain.
func (s *session) checkPrefix(allowed []decision, bad decision, parts []string, track bool) ([]decision, decision) {
	for i := range allowed {
		a := &allowed[i]
		var ran []*atomic.Int32
		if needsNamedCheck(*a) {
			var err error
			if ran, err = s.checkNamed(a, []string{parts[i]}, track); err != nil {
				a.err = err
				return allowed[:i], *a
			}
		}
		if track {
			s.forwarded(*a, ran)
		}
	}
	return allowed, bad
}

// noteEffect notes what a forwarded statement leaves on the upstream
// connection beyond its transaction's settings (sessionSettings).
func (s *session) noteEffect(e rewrite.Effect) {
	s.catalogStale = s.catalogStale || e.ChangesCatalog
	s.placeholder = s.placeholder || e.Placeholder
}

// forwarded records the statements of an allowed decision as sent: what
// each does once it has run, and, for each cell in ran (by statement;
// from checkNamed), whether it ran.
func (s *session) forwarded(d decision, ran []*atomic.Int32) {
	for i, st := range d.result.Statements {
		s.noteEffect(st.Effect)
		var r *atomic.Int32
		if i < len(ran) {
			r = ran[i]
		}
		s.settings.sent(st.Effect, r)
		if st.Effect.CopyIn {
			s.copySent()
		}
	}
}

// forwardRefusal audits a refusal and returns what goes upstream in the
// refused text's place: the statements allowed before it (each audited
// and queued like any other), each followed by "; ", then the refusal's
// marker. track records the marker, which fails the query there.
func (s *session) forwardRefusal(allowed []decision, bad decision, track bool) string {
	var b strings.Builder
	for _, a := range allowed {
		s.audit(a)
		s.queueRecords(a, len(a.result.Statements))
		b.WriteString(a.sql)
		b.WriteString("; ")
	}
	s.audit(bad)
	if track {
		s.settings.refused()
	}
	b.WriteString(s.refuse(bad.err))
	return b.String()
}

// containsResetAll is a cheap pre-check for RESET ALL / DISCARD ALL, which
// also clear mandate's own settings.
func containsResetAll(sql string) bool {
	return containsFold(sql, "all") && (containsFold(sql, "reset") || containsFold(sql, "discard"))
}

// containsFold is strings.Contains ignoring ASCII case, without copying
// the statement (it runs on every statement). sub must be lower case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && s[i+j]|0x20 == sub[j] || j < len(sub) && s[i+j] == sub[j] {
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}

// refuse registers err as a refusal and returns its marker statement.
func (s *session) refuse(err error) string {
	resp := toErrorResponse(err)
	if resp.Severity == "FATAL" {
		resp.Severity, resp.SeverityUnlocalized = "ERROR", "ERROR"
	}
	s.srv.metrics.errors.WithLabelValues(resp.Code).Inc()
	s.srv.metrics.refusals.Inc()
	return s.markers.marker(resp, s.segment)
}

// decideSetting decides a statement mandate acts on itself (see
// rewrite.MandateSetting). A SET or RESET of mandate.* is replaced upstream
// by a stand-in; RESET ALL and DISCARD ALL go as they are. The change
// happens when the statement runs: track (a simple Query) records it now,
// and a Parse leaves it to each Execute (executeSetting), with the setting
// in the decision.
func (s *session) decideSetting(sql string, st rewrite.Setting, track bool) (string, decision, outcome) {
	// RESET ALL and DISCARD ALL reset search_path and mandate's settings too.
	var e rewrite.Effect
	if st.ResetAll {
		e = rewrite.Effect{SearchPath: &rewrite.SearchPathChange{Reset: true}, ResetAll: true}
	}
	info := rewrite.StmtInfo{Kind: rewrite.KindSet, Effect: e}
	if st.DiscardAll {
		// It drops every named object, if it runs (not in a block).
		info.Kind, info.All = rewrite.KindDiscard, true
	}
	d := decision{result: rewrite.Result{Statements: []rewrite.StmtInfo{info}}}
	forwarded := sql
	if !st.ResetAll {
		d.setting = &st
		forwarded = settingReplacement(st)
		// The stand-in is a custom parameter upstream, whose name outlives
		// DISCARD ALL: a pooled backend would tell the next session that
		// one here declared a purpose or switched identity.
		s.placeholder = true
	}
	if !track {
		return forwarded, d, handled
	}
	if st.ResetAll {
		var ran *atomic.Int32
		if op, ok := namedOpOf(info, sql); ok {
			ran = new(atomic.Int32)
			s.applyNamed(op, ran)
		}
		s.settings.sent(e, ran)
		return forwarded, d, handled
	}
	c, err := s.mandateChange(st)
	if err != nil {
		bad := s.refusal(err)
		return s.forwardRefusal(nil, bad, track), bad, refused
	}
	s.settings.set(c)
	return forwarded, d, handled
}

// mandateChange checks a SET or RESET of mandate.* about to run and
// returns what it changes: a token must verify, and only login principals
// the configuration permits may assume identities.
func (s *session) mandateChange(st rewrite.Setting) (mandateChange, error) {
	switch st.Name {
	case "mandate.token":
		c := mandateChange{local: st.Local}
		if st.Reset || st.Value == "" {
			return c, nil // the login principal
		}
		p, err := s.assume(st.Value)
		c.identity = &p
		return c, err
	case "mandate.purpose":
		// A name, not a payload: each audit record repeats it (red team
		// round 36, F1: an 8 MB purpose made every SELECT 1 an 8 MB record).
		if len(st.Value) > maxPurpose {
			return mandateChange{}, &Error{Code: "22023", Msg: fmt.Sprintf("mandate.purpose is at most %d bytes", maxPurpose)}
		}
		return mandateChange{purpose: true, value: st.Value, local: st.Local}, nil
	}
	return mandateChange{}, &Error{Code: "42704", Msg: fmt.Sprintf("unrecognized configuration parameter %q", st.Name)}
}

// maxPurpose bounds a purpose's length, as PostgreSQL bounds a name.
const maxPurpose = 63

// assume verifies a token for SET mandate.token.
func (s *session) assume(token string) (principal, error) {
	e := s.srv.cfg.Enforcer
	// The right is the login principal's own: not of someone acting for
	// it, who would then act as anyone unnamed (red team round 32, F3).
	if !e.AssumeAllowed[s.login.Subject] || len(s.login.Actors) > 0 {
		return principal{}, &Error{Code: codeInsufficientPriv, Msg: fmt.Sprintf("%s may not assume identities with SET mandate.token", s.login.describe())}
	}
	if e.Verifier == nil {
		return principal{}, &Error{Code: codeInvalidAuthSpec, Msg: "no token verifier is configured"}
	}
	id, err := e.Verifier.Verify(token)
	if err != nil {
		return principal{}, err
	}
	return fromIdentity(id), nil
}

// principal is who the next statement runs as.
func (s *session) principal() principal {
	return s.settings.current().principal(s.login)
}

// principal is who a statement runs as under v.
func (v settingValues) principal(login principal) principal {
	if v.identity != nil {
		return *v.identity
	}
	return login
}

func (s *session) sessionID() string { return strconv.FormatUint(s.id, 10) }

// quoteLiteral quotes s as an SQL string constant in the escape form
// (E'…'), which reads the same whatever standard_conforming_strings is.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
