package proxy

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-proxy/mandate/audit"
	"github.com/mandate-proxy/mandate/grant"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/rewrite"
)

// auditTrail holds a session's allowed statements until the upstream
// reports how they ended (rows affected, SQLSTATE), in the order it will
// report them: one CommandComplete, EmptyQueryResponse, PortalSuspended or
// ErrorResponse each, and the segment's ReadyForQuery for those an error
// skipped. A pipelining client has later segments queued behind the one
// being answered, so each item knows its segment (red team round 11, A2).
// Refusals are written at once; what is still queued when the session
// ends is written then, its outcome unknown (A1).
type auditTrail struct {
	mu      sync.Mutex
	queue   []auditItem
	rows    atomic.Int64 // DataRows seen for the statement at the head (no lock per row)
	aborted string       // SQLSTATE that aborted the rest of the segment being answered
}

// auditItem is one answer the trail waits for: an allowed statement's
// record, or a placeholder (skip) for what mandate itself forwarded in a
// statement's place (a refusal marker, a handled SET).
type auditItem struct {
	rec  audit.Record
	skip bool
	seg  uint64 // the segment it was sent in (session.segment)
}

// recordOf is an allowed record of this session for subject acting
// through actors, for the caller to complete. It names the login too when
// that is someone else: who assumed the identity (red team round 32, F1).
func (s *session) recordOf(subject string, actors []policy.Actor) audit.Record {
	r := audit.Record{Time: s.srv.cfg.Enforcer.now(), Session: s.sessionID(), ClientAddr: s.conn.RemoteAddr().String(),
		Subject: subject, Actors: auditActors(actors), Decision: audit.DecisionAllow}
	if l := s.login; l.Subject != "" && (l.Subject != subject || !slices.Equal(l.Actors, actors)) {
		r.Login = &audit.Principal{Subject: l.Subject, Actors: auditActors(l.Actors)}
	}
	return r
}

func auditActors(actors []policy.Actor) []audit.Actor {
	var out []audit.Actor
	for _, a := range actors {
		out = append(out, audit.Actor{ID: a.ID, Kind: string(a.Kind)})
	}
	return out
}

// recordFor is the audit record of a decision, without its outcome.
func (s *session) recordFor(d decision) audit.Record {
	return s.recordOfStatements(d, d.result.Statements)
}

// recordOfStatements is d's record for some of its statements: their
// tables, action, filters, masks and policies.
func (s *session) recordOfStatements(d decision, sts []rewrite.StmtInfo) audit.Record {
	r := s.recordOf(d.scope.Subject, d.scope.Actors)
	r.Purpose, r.Fingerprint = d.scope.Purpose, d.fingerprint()
	if d.scope.Delegation != nil {
		r.DelegationID = d.scope.Delegation.ID
	}
	seen := map[string]bool{}
	for _, st := range sts {
		for _, rel := range st.Relations {
			if !seen[rel.Name] {
				seen[rel.Name] = true
				r.Tables = append(r.Tables, rel.Name)
			}
			switch a := string(rel.Action); {
			case r.Action == "" || r.Action == string(grant.Select) && rel.Action != grant.Select:
				// A write's action wins over a read in its CTE or FROM
				// (red team round 22, A1: recorded as a select).
				r.Action = a
			case rel.Action != grant.Select && !slices.Contains(strings.Split(r.Action, ","), a):
				// Each write of a writable CTE is named (red team round
				// 40d: an UPDATE in a CTE feeding an INSERT was an update).
				r.Action += "," + a
			}
			for _, f := range rel.Filters {
				r.Filters = append(r.Filters, rel.Name+": "+f)
			}
			for _, m := range rel.Masks {
				r.Masks = append(r.Masks, rel.Name+"."+m.Column+": "+string(m.Kind))
			}
			r.PolicyIDs = append(r.PolicyIDs, rel.Policies...)
		}
	}
	return r
}

// recordedFor reports whether r names the caller of scope: its subject,
// actors, delegation and purpose.
func recordedFor(r audit.Record, sc policy.Scope) bool {
	if r.Subject != sc.Subject || r.Purpose != sc.Purpose || len(r.Actors) != len(sc.Actors) {
		return false
	}
	for i, a := range sc.Actors {
		if r.Actors[i].ID != a.ID || r.Actors[i].Kind != string(a.Kind) {
			return false
		}
	}
	var delegation string
	if sc.Delegation != nil {
		delegation = sc.Delegation.ID
	}
	return r.DelegationID == delegation
}

// auditRecord is recordFor when there is an audit log to write it to.
func (s *session) auditRecord(d decision) audit.Record {
	if s.srv.cfg.Audit == nil {
		return audit.Record{}
	}
	return s.recordFor(d)
}

// audit records a decision: a refusal at once, an allowed statement when
// the upstream reports its end (see auditTrail).
func (s *session) audit(d decision) {
	m := s.srv.metrics
	if d.err != nil {
		m.decisions.WithLabelValues("deny").Inc()
		s.observeRevocation(d)
		r := s.recordFor(d)
		r.Decision = audit.DecisionDeny
		resp := toErrorResponse(d.err)
		r.SQLState = resp.Code
		// A denial names its deciding policies in the detail (see policy.Denied).
		if ids, ok := strings.CutPrefix(resp.Detail, "policies: "); ok {
			r.PolicyIDs = append(r.PolicyIDs, strings.Split(ids, ", ")...)
		}
		// And the relation it refused, which a refused statement's result
		// does not list.
		if re := (*rewrite.Error)(nil); errors.As(d.err, &re) && re.Relation != "" && len(r.Tables) == 0 {
			r.Tables, r.Action = []string{re.Relation}, re.Action
		}
		for _, id := range r.PolicyIDs {
			m.decisionPolicies.WithLabelValues("deny", id).Inc()
		}
		s.writeAudit(r)
		return
	}
	m.decisions.WithLabelValues("allow").Inc()
	for _, st := range d.result.Statements {
		for _, rel := range st.Relations {
			for _, id := range rel.Policies {
				m.decisionPolicies.WithLabelValues("allow", id).Inc()
			}
		}
	}
	if d.scope.Delegation != nil {
		s.lastDelegation = d.scope.Delegation.ID
	}
}

// queueRecords queues n completions of an allowed simple query (one per
// statement in it), each with its own statement's tables, action and
// fingerprint when there is one per statement (a SELECT and an UPDATE sent
// together were both recorded as selects of both tables, under the query's
// fingerprint: red team rounds 19 and 20, A1 and A2). The records are
// built only when there is an audit log.
func (s *session) queueRecords(d decision, n int) {
	if s.srv.cfg.Audit == nil {
		return
	}
	sts := d.result.Statements
	recs := make([]audit.Record, max(1, n))
	var texts []string // each statement's text, for its own fingerprint
	if len(sts) == len(recs) && len(recs) > 1 && d.entry != nil {
		if parts, err := rewrite.Split(d.entry.sql); err == nil && len(parts) == len(recs) {
			texts = parts
		}
	}
	for i := range recs {
		if len(sts) != len(recs) {
			recs[i] = s.recordFor(d)
			continue
		}
		recs[i] = s.recordOfStatements(d, sts[i:i+1])
		if texts != nil {
			recs[i].Fingerprint = rewrite.Fingerprint(texts[i])
		}
	}
	s.trail.mu.Lock()
	for _, r := range recs {
		s.trail.queue = append(s.trail.queue, auditItem{rec: r, seg: s.segment})
	}
	s.trail.mu.Unlock()
}

// auditPlaceholder keeps the trail aligned for a statement mandate
// forwarded in the client's statement's place.
func (s *session) auditPlaceholder() {
	if s.srv.cfg.Audit == nil {
		return
	}
	s.trail.mu.Lock()
	s.trail.queue = append(s.trail.queue, auditItem{skip: true, seg: s.segment})
	s.trail.mu.Unlock()
}

// observeRevocation feeds mandate_revocation_seconds: the first refusal
// of a session whose last allowed statement used a delegation that has
// since been revoked measures revocation commit → enforcement.
func (s *session) observeRevocation(d decision) {
	if s.lastDelegation == "" {
		return
	}
	snap, err := s.srv.cfg.Enforcer.State.Snapshot()
	if err != nil {
		return
	}
	if at, ok := snap.RevokedAt(s.lastDelegation); ok {
		s.srv.metrics.revocation.Observe(s.srv.cfg.Enforcer.now().Sub(at).Seconds())
		s.lastDelegation = ""
	}
}

// auditLogin records an authentication's outcome: the principal it
// established, or the refusal: its subject a verified token's, with the
// startup user's name beside it, else the startup user's name. A client
// that went away mid-exchange decided nothing and gets no record.
func (s *session) auditLogin(user string, p principal, err error) {
	if s.srv.cfg.Audit == nil {
		return
	}
	r := s.recordOf(p.Subject, p.Actors)
	r.Action = "login"
	if err != nil {
		var own *Error
		if !errors.As(err, &own) {
			return
		}
		r.Decision, r.SQLState = audit.DecisionDeny, own.Code
		if p.Subject == "" {
			r.Subject = user
		} else {
			r.User = user
		}
	}
	s.writeAudit(r)
}

// auditSetting queues the record of a SET or RESET of mandate.*, a RESET
// ALL or a DISCARD ALL that mandate applied: it names who acts from then
// on (identity and purpose), so an identity switch is on record where it
// happened, not only in the next statement's record.
func (s *session) auditSetting() {
	if s.srv.cfg.Audit == nil {
		return
	}
	v := s.settings.current()
	p := v.principal(s.login)
	r := s.recordOf(p.Subject, p.Actors)
	r.Purpose, r.Action = p.purpose(v.purpose), "set"
	s.queueExecution(r)
}

// queueExecution queues a record whose outcome the upstream's answer
// tells: a prepared statement's execution, a setting's stand-in.
func (s *session) queueExecution(r audit.Record) {
	if s.srv.cfg.Audit == nil {
		return
	}
	r.Time = s.srv.cfg.Enforcer.now()
	s.trail.mu.Lock()
	s.trail.queue = append(s.trail.queue, auditItem{rec: r, seg: s.segment})
	s.trail.mu.Unlock()
}

func (s *session) writeAudit(r audit.Record) {
	if s.srv.cfg.Audit == nil {
		return
	}
	if err := s.srv.cfg.Audit.Write(r); err != nil {
		s.srv.metrics.auditFailures.Inc()
		s.log.Error("audit write failed: statements are refused until mandate restarts with a writable audit log", "err", err)
	}
}

// auditTap follows the upstream's answers for the audit trail. The
// segment being answered is the number of ReadyForQuery answers before it.
func (s *session) auditTap(typ byte, body []byte) {
	t := &s.trail
	if typ == 'D' {
		t.rows.Add(1)
		return
	}
	switch typ {
	case 'C', 'I', 's', 'E', 'Z': // a statement's or segment's end
	default:
		return
	}
	seg := s.answered.Load()
	t.mu.Lock()
	if typ == 'Z' {
		// What is left of the segment was skipped after an error: decided,
		// never run.
		n := 0
		for n < len(t.queue) && t.queue[n].seg <= seg {
			n++
		}
		rest := t.queue[:n:n] // appends go past the queue's end, never here
		t.queue = t.queue[n:]
		t.rows.Store(0)
		aborted := t.aborted
		t.aborted = ""
		t.mu.Unlock()
		for _, it := range rest {
			if !it.skip {
				it.rec.SQLState = aborted
				s.finishAudit(it.rec)
			}
		}
		return
	}
	if len(t.queue) == 0 || t.queue[0].seg != seg {
		t.rows.Store(0) // an answer to nothing the trail follows
		if typ == 'E' {
			t.aborted = ""
		}
		t.mu.Unlock()
		return
	}
	it := t.queue[0]
	t.queue = t.queue[1:]
	switch typ {
	case 'E':
		// Rows sent before the error were read all the same (red team
		// round 36, F3: recorded as none).
		_, it.rec.SQLState = errorFields(body)
		it.rec.Rows = t.rows.Load()
		t.aborted = it.rec.SQLState
	case 'C':
		it.rec.Rows = commandRows(body, t.rows.Load())
	default:
		it.rec.Rows = t.rows.Load()
	}
	t.rows.Store(0)
	t.mu.Unlock()
	if !it.skip {
		s.finishAudit(it.rec)
	}
}

// finishAudit writes an allowed record once its outcome is known.
func (s *session) finishAudit(r audit.Record) {
	r.Duration = time.Since(r.Time)
	s.writeAudit(r)
}

// auditUnfinished writes what is still queued when the session ends: the
// upstream was sent these statements and did not say how they ended (the
// client went away mid-answer, or the upstream did), so they may have run,
// a write may have committed. Called once both loops have ended.
func (s *session) auditUnfinished() {
	t := &s.trail
	t.mu.Lock()
	rest := t.queue
	t.queue = nil
	t.mu.Unlock()
	for i, it := range rest {
		if !it.skip {
			it.rec.Outcome = audit.OutcomeUnknown
			if i == 0 {
				it.rec.Rows = t.rows.Load() // relayed before the session ended
			}
			s.finishAudit(it.rec)
		}
	}
}

// commandRows is the row count at the end of a CommandComplete tag
// ("INSERT 0 5", "SELECT 3", "COPY 10"), or counted when the tag has none.
func commandRows(body []byte, counted int64) int64 {
	tag := bytes.TrimRight(body, "\x00")
	if i := bytes.LastIndexByte(tag, ' '); i >= 0 {
		if n, err := strconv.ParseInt(string(tag[i+1:]), 10, 64); err == nil {
			return n
		}
	}
	return counted
}
