package proxy

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/mandate-proxy/mandate/audit"
	"github.com/mandate-proxy/mandate/policy"
	"github.com/mandate-proxy/mandate/rewrite"
)

// A prepared statement keeps the SQL it was rewritten into at Parse, and
// with it the grants of that moment. Before each Bind mandate decides the
// client's SQL again (a cache hit when nothing changed); if the answer
// differs — a delegation revoked, a consent withdrawn, a policy reloaded —
// it re-prepares the statement under the same name first, and hides the
// upstream's answers to that from the client. It does the same when it
// cannot be sure the upstream holds what it decided: the Parse that made it
// failed, was skipped after an earlier error, or has not been answered.
//
// A portal keeps the rewrite it was bound with for as long as it lives.
// Each Execute of it is checked again, as a FETCH of a cursor is: the first
// after its Bind cheaply (nothing the decision depended on changed, the
// settings in effect included), any later one by deciding its statement
// again. A SET or RESET of mandate.* has nothing to decide at Bind: it is
// checked and takes effect at each Execute, as a simple Query of it would.

// preparedStmt is what mandate knows of one prepared statement: fixed once
// made (a re-preparation makes another), so a portal can keep the one it
// was bound to.
type preparedStmt struct {
	sql       string   // the client's text
	forwarded string   // what the upstream prepared under the name
	paramOIDs []uint32 // the client's parameter types, for re-preparing
	record    audit.Record
	refused   bool             // the marker was prepared: executions fail upstream
	handled   bool             // a setting mandate acts on itself: executions are not audited
	setting   *rewrite.Setting // a handled SET or RESET of mandate.*: checked and applied at each execution
	twice     bool             // parsed under a name in use: which text runs is unknown
	effect    rewrite.Effect   // on the session, at each execution
	op        *namedOp         // what each execution does to named objects (named.go), if anything
	made      *atomic.Int32    // the outcome of the Parse that prepared forwarded
	segment   uint64           // the segment that Parse was sent in
	parsed    bool             // that Parse was the client's, not a re-preparation
}

// certain reports whether the upstream holds forwarded under the
// statement's name for a message sent now in segment cur: its Parse ran,
// or is in cur (a later message there runs only if it did).
func (ps *preparedStmt) certain(cur uint64) bool {
	state := ps.made.Load()
	return state == stmtReady || state == stmtPending && ps.segment == cur
}

// decided is the statement's text and what it was prepared as.
func (ps *preparedStmt) decided() decidedText {
	return decidedText{sql: ps.sql, forwarded: ps.forwarded, inert: ps.refused || ps.handled}
}

// drops are upstream answers to messages mandate injected (a Close and a
// Parse re-preparing a statement, a refusal's marker, the statement
// cache's Parse and Close), to be hidden from the client. Each belongs to
// a segment (the messages up to a Sync) and comes after a known number of
// answers of its type to the client's own messages in that segment: the
// upstream answers in order, so counting ParseCompletes and CloseCompletes
// tells which one is mandate's. An ErrorResponse ends what the segment
// answers: it is the client's to see, and the injected messages not yet
// answered are skipped (or were the error), as are those of a segment that
// ended.
type drops struct {
	mu      sync.Mutex
	pending []drop
	synced  uint64       // ReadyForQuery answers seen: the segment being answered
	n       atomic.Int32 // len(pending), read without the lock on the per-row path
	// shown counts the answers of each hidden type ('1', '3', '2', 'n')
	// passed to the client in the segment being answered; the upstream
	// loop's alone.
	shown [4]int
}

type drop struct {
	segment uint64
	typ     byte
	before  int           // the client's answers of typ in the segment ahead of it
	state   *atomic.Int32 // if not nil, told the outcome (stmtReady or stmtFailed)
}

// settle reports a drop's outcome to whoever asked for it.
func (d drop) settle(state int32) {
	if d.state != nil {
		d.state.Store(state)
	}
}

// hidden indexes drops.shown and the session's sent counts: the answer
// types of injected messages. BindComplete and NoData are only hidden in
// a segment of mandate's own (a simple query sent as a prepared statement's
// execution, simpleprep.go), where the client expects none.
func hidden(typ byte) int {
	switch typ {
	case '1':
		return 0
	case '3':
		return 1
	case '2':
		return 2
	case 'n':
		return 3
	}
	return -1
}

func (d *drops) expect(x drop) {
	d.mu.Lock()
	d.pending = append(d.pending, x)
	d.n.Store(int32(len(d.pending)))
	d.mu.Unlock()
}

// hide reports whether an upstream message must not reach the client.
func (d *drops) hide(typ byte) bool {
	i := hidden(typ)
	switch {
	case typ == 'Z':
		d.shown = [4]int{}
		d.mu.Lock()
		d.synced++
		d.settle(func(x drop) bool { return x.segment < d.synced })
		d.mu.Unlock()
	case typ == 'E' && d.n.Load() > 0:
		d.mu.Lock()
		d.settle(func(x drop) bool { return x.segment == d.synced })
		d.mu.Unlock()
	case i >= 0 && d.n.Load() > 0:
		d.mu.Lock()
		defer d.mu.Unlock()
		for k, x := range d.pending {
			if x.segment == d.synced && x.typ == typ {
				if x.before != d.shown[i] {
					break // the client's answer comes first
				}
				x.settle(stmtReady)
				d.pending = append(d.pending[:k], d.pending[k+1:]...)
				d.n.Store(int32(len(d.pending)))
				return true
			}
		}
		d.shown[i]++
	case i >= 0:
		d.shown[i]++ // the common case: nothing injected, no lock
	}
	return false
}

// settle drops the pending answers that will not come (match), as failed.
// d.mu is held.
func (d *drops) settle(match func(drop) bool) {
	d.pending = slices.DeleteFunc(d.pending, func(x drop) bool {
		if match(x) {
			x.settle(stmtFailed)
			return true
		}
		return false
	})
	d.n.Store(int32(len(d.pending)))
}

// hideAnswer expects the answer of a message injected now, ahead of the
// client's next one, and hides it; state, if not nil, learns its outcome.
func (s *session) hideAnswer(typ byte, state *atomic.Int32) {
	s.drops.expect(drop{segment: s.segment, typ: typ, before: s.sent[hidden(typ)], state: state})
}

// onParse decides a Parse and remembers the statement.
func (s *session) onParse(m *pgproto3.Parse) error {
	ps := &preparedStmt{sql: m.Query, paramOIDs: append([]uint32(nil), m.ParameterOIDs...),
		made: new(atomic.Int32), segment: s.segment, parsed: true}
	var d decision
	var o outcome
	m.Query, d, o = s.decideText(m.Query, false, m.ParameterOIDs)
	ps.forwarded = m.Query
	if len(d.result.Statements) == 1 {
		ps.effect = d.result.Statements[0].Effect
		ps.op = namedOpFor(d, ps.sql)
	}
	switch o {
	case decided:
		ps.record = s.auditRecord(d)
	case refused:
		ps.refused = true
		s.auditPlaceholder()
		s.settings.refused() // the marker fails at Parse
	case handled:
		ps.handled, ps.setting = true, d.setting
	}
	if m.Name == "" {
		s.unnamed = nil
		if o == decided && ps.forwarded != ps.sql {
			if err := s.cacheParse(m); err != nil {
				return err
			}
		}
	}
	if m.Name != "" && s.nameTaken(m.Name) {
		// PostgreSQL refuses a named Parse of a name in use and keeps the
		// statement there, unless that one had failed upstream: mandate
		// cannot tell which text runs, so a Bind of the name is refused
		// (and the name freed) until it is prepared again.
		ps.twice = true
	}
	s.stmts[m.Name] = ps
	s.settings.sent(rewrite.Effect{}, ps.made)
	return nil
}

// namedOpFor is what d, one statement with text, does to named objects
// each time it runs; nil if nothing.
func namedOpFor(d decision, text string) *namedOp {
	if op, ok := namedOpOf(d.result.Statements[0], text); ok {
		return &op
	}
	return nil
}

// nameTaken reports whether a statement of this name may exist upstream,
// made by Parse or by SQL PREPARE (a refused Parse's marker never exists),
// or by mandate's statement cache.
func (s *session) nameTaken(name string) bool {
	if ps, ok := s.stmts[name]; ok && !ps.refused {
		return true
	}
	return len(s.held(s.named.table(rewrite.KindPrepare), name)) > 0 || s.upstream.stmts.has(name)
}

// livePortal is the portal a Bind made under name, nil once its
// transaction has ended (a protocol portal is never held past it).
func (s *session) livePortal(name string) *boundPortal {
	p := s.portals[name]
	if p != nil && s.txEnded.Load() > p.segment {
		delete(s.portals, name)
		return nil
	}
	return p
}

// onBind re-decides the statement a Bind names and, when the decision
// changed, queues a re-prepare in front of the Bind.
func (s *session) onBind(m *pgproto3.Bind) error {
	p := &boundPortal{segment: s.segment, stamp: s.stamp(), covered: true}
	s.portals[m.DestinationPortal] = p
	err := s.readyStatement(m.PreparedStatement, p)
	s.settings.sent(rewrite.Effect{}, &p.made)
	return err
}

// readyStatement makes sure the statement called name is what it decides
// as now, for a Bind into p (which learns what it binds) or, p nil, a
// Describe: it re-prepares the statement in front of the message when the
// decision changed or the upstream may hold something else, or queues the
// refusal there.
func (s *session) readyStatement(name string, p *boundPortal) error {
	ps := s.stmts[name]
	if ps == nil {
		return s.bindOther(name, p)
	}
	if ps.refused && ps.segment == s.segment {
		// Its marker failed in this segment: the upstream skips this
		// message to the Sync, and the refusal is on record once.
		p.bind(ps, nil)
		return nil
	}
	var d decision
	if ps.setting != nil {
		// Nothing to decide before it runs (executeSetting): the stand-in
		// carries nothing. A refusal below is audited for whoever acts now.
		d = s.refusal(nil)
		d.sql = ps.forwarded
	} else {
		d = s.redecide(ps)
	}
	switch {
	case d.err != nil:
	case ps.twice:
		d.err = ambiguous(rewrite.KindExecute, name)
	case ps.parsed && !ps.refused && ps.made.Load() == stmtFailed:
		// The client's Parse failed, or was skipped after an earlier error:
		// as far as mandate knows, no such statement exists (PostgreSQL
		// would run an older one of the name, if any, which the refusal
		// drops).
		msg := fmt.Sprintf("prepared statement %q does not exist", name)
		if name == "" {
			msg = "unnamed prepared statement does not exist"
		}
		d.err = &Error{Code: "26000", Msg: msg} // invalid_sql_statement_name
	}
	// Re-preparing makes sure of what the upstream holds, whether its
	// Parse is unanswered or SQL PREPARE may have made the name too.
	sure := ps.certain(s.segment) && len(s.held(s.named.table(rewrite.KindPrepare), name)) == 0 ||
		name == "" && s.unnamed != nil // bound to the cached statement, which holds forwarded
	if d.err == nil && d.sql == ps.forwarded && sure {
		if !ps.handled && s.srv.cfg.Audit != nil && !recordedFor(ps.record, d.scope) {
			// Another identity or purpose, the same rewrite: the record
			// names who runs it now. Portals bound before keep theirs.
			again := *ps
			again.record = s.recordFor(d)
			ps = &again
			s.stmts[name] = ps
		}
		p.bind(ps, nil)
		return nil
	}
	again := *ps
	again.twice, again.made, again.segment, again.parsed = false, new(atomic.Int32), s.segment, false
	forwarded, refused, err := s.reprepare(name, ps.paramOIDs, d, again.made)
	if err != nil {
		return err
	}
	again.forwarded, again.refused = forwarded, refused
	if !refused {
		again.record = s.auditRecord(d)
		if len(d.result.Statements) == 1 {
			again.op = namedOpFor(d, ps.sql)
		}
	}
	s.stmts[name] = &again
	p.bind(&again, nil)
	return nil
}

// onDescribe readies the statement a Describe names as a Bind would: the
// answer describes what the statement is under the grants in force. One
// parsed in the same segment was decided just now.
func (s *session) onDescribe(name string) error {
	if ps := s.stmts[name]; ps != nil && ps.parsed && ps.segment == s.segment {
		return nil
	}
	return s.readyStatement(name, nil)
}

// boundPortal is a portal a Bind made: the segment (the messages up to a
// Sync) it was bound in, what it runs, and what its decision depended on.
type boundPortal struct {
	segment uint64
	made    atomic.Int32  // the Bind's outcome
	ps      *preparedStmt // the statement it runs,
	sql     *namedObject  // or the SQL PREPARE it runs
	record  audit.Record  // for the SQL PREPARE's executions, as an EXECUTE of it
	stamp   decisionStamp // taken before the decision it was bound under
	covered bool          // that decision covers its next Execute
}

// bind records what p runs (nothing when p is nil: a Describe).
func (p *boundPortal) bind(ps *preparedStmt, sql *namedObject) {
	if p != nil {
		p.ps, p.sql = ps, sql
	}
}

// certain reports whether the portal is what its Bind made, for a message
// sent now in segment cur (see preparedStmt.certain).
func (p *boundPortal) certain(cur uint64) bool {
	state := p.made.Load()
	return state == stmtReady || state == stmtPending && p.segment == cur
}

// runs is what the portal runs, as decided when it was bound.
func (p *boundPortal) runs() []decidedText {
	switch {
	case p.ps != nil:
		return []decidedText{p.ps.decided()}
	case p.sql != nil:
		return []decidedText{{sql: p.sql.text, forwarded: p.sql.forwarded}}
	}
	return nil
}

// redecide decides a protocol statement's text again, with the check an
// EXECUTE or FETCH in it makes of what it names.
func (s *session) redecide(ps *preparedStmt) decision {
	d := s.srv.cfg.Enforcer.decideTyped(s, ps.sql, ps.paramOIDs)
	if d.err == nil && needsNamedCheck(d) {
		_, d.err = s.checkNamed(&d, nil, false)
	}
	return d
}

// bindOther checks a Bind (into p) or Describe of a statement no Parse of
// this session made: one made with SQL PREPARE (the two share a name
// space) is re-decided as an SQL EXECUTE of it would be, and any other
// name is refused.
func (s *session) bindOther(name string, p *boundPortal) error {
	if name == "" {
		// SQL cannot name the unnamed statement: no Parse, no statement.
		_, _, err := s.reprepare(name, nil, s.refusal(&Error{Code: "26000", Msg: "unnamed prepared statement does not exist"}), nil)
		return err
	}
	d := s.srv.cfg.Enforcer.decide(s, "EXECUTE "+pgx.Identifier{name}.Sanitize())
	if d.err == nil {
		if _, d.err = s.checkNamed(&d, nil, false); d.err == nil {
			if objs := s.held(s.named.table(rewrite.KindPrepare), name); len(objs) == 1 {
				p.bind(nil, objs[0]) // checkName let exactly one through
				if p != nil {
					p.record = s.auditRecord(d)
				}
				return nil
			}
		}
	}
	_, _, err := s.reprepare(name, nil, d, nil)
	return err
}

// reprepare queues, in front of the client's Bind, a Close and a Parse that
// make the upstream statement name d's rewrite, or a refusal marker when d
// was refused (its error then reaches the client in the Bind's place).
// made, if not nil, learns whether the Parse ran.
func (s *session) reprepare(name string, paramOIDs []uint32, d decision, made *atomic.Int32) (forwarded string, refused bool, err error) {
	s.audit(d)
	forwarded, refused = d.sql, d.err != nil
	if name == "" {
		s.unnamed = nil // the Parse below makes the upstream's own again
	}
	if refused {
		forwarded = s.refuse(d.err)
	}
	u := s.upstream
	if u.wbuf, err = (&pgproto3.Close{ObjectType: 'S', Name: name}).Encode(u.wbuf); err != nil {
		return "", false, err
	}
	if u.wbuf, err = (&pgproto3.Parse{Name: name, Query: forwarded, ParameterOIDs: paramOIDs}).Encode(u.wbuf); err != nil {
		return "", false, err
	}
	s.hideAnswer('3', nil)
	s.hideAnswer('1', made)
	if refused {
		s.auditPlaceholder() // for the marker's error, which the client sees
		s.settings.refused()
	}
	return forwarded, refused, nil
}

// onExecute checks the portal an Execute names, queues the audit record
// of the statement it runs and records what it does to the session.
func (s *session) onExecute(m *pgproto3.Execute) error {
	p := s.livePortal(m.Portal)
	if p == nil || len(s.held(s.named.table(rewrite.KindDeclare), m.Portal)) > 0 {
		// No portal, or an SQL cursor may hold the name too (portals and
		// cursors share names, and mandate cannot always tell which one
		// PostgreSQL kept): checked as a FETCH, against everything the
		// name may hold (red team rounds 38 and 39: a cursor and a portal
		// under one name ran past revocation as the other).
		return s.executeOther(m.Portal)
	}
	ps := p.ps
	var d decision
	rechecked := false // d is the portal's statement decided now
	switch {
	case !p.certain(s.segment):
		// Its Bind failed or has not been answered: the name may hold
		// another portal (one bound or declared earlier), or none.
		d = s.refusal(ambiguous(rewrite.KindFetch, m.Portal))
	case ps != nil && ps.refused:
		s.settings.refused() // its Bind fails
		return nil
	case ps != nil && ps.handled:
		// Nothing was decided at its Bind: a mandate.* setting is checked
		// as it runs (executeSetting), RESET ALL and DISCARD ALL need none.
	case p.covered && p.stamp.covers(s.stamp()):
		// The first Execute right after its Bind: decided there.
	default:
		// A portal goes on with the rewrite it was bound with: re-decided,
		// as an SQL FETCH from a cursor is.
		d, rechecked = s.portalCheck(p, m.Portal), true
	}
	p.covered = false
	if d.err == nil && ps != nil && ps.op != nil {
		if err := s.refuseTaken(*ps.op); err != nil {
			d = s.refusal(err)
		}
	}
	if d.err != nil {
		return s.refuseAhead(d)
	}
	switch {
	case ps == nil:
		// A statement made with SQL PREPARE, run as an EXECUTE of it is.
		record := p.record
		if rechecked && s.srv.cfg.Audit != nil && !recordedFor(record, d.scope) {
			record = s.recordFor(d)
		}
		s.queueExecution(record)
		s.settings.sent(rewrite.Effect{}, nil)
	case ps.setting != nil:
		return s.executeSetting(*ps.setting)
	case ps.handled:
		s.executed(ps)
		s.auditSetting()
	default:
		record := ps.record
		if rechecked && s.srv.cfg.Audit != nil && !recordedFor(record, d.scope) {
			// Another identity or purpose since the Bind, the same
			// rewrite: the record names who runs it now.
			record = s.recordFor(d)
		}
		s.queueExecution(record)
		s.executed(ps)
	}
	return nil
}

// executeSetting checks a SET or RESET of mandate.* at its Execute and
// records what it changes, as a simple Query of it would; a refusal's
// error reaches the client in the Execute's place.
func (s *session) executeSetting(st rewrite.Setting) error {
	c, err := s.mandateChange(st)
	if err != nil {
		return s.refuseAhead(s.refusal(err))
	}
	s.settings.set(c)
	s.auditSetting()
	return nil
}

// executeOther checks an Execute of a portal no Bind of this session made
// (or that mandate forgot with a CLOSE ALL or DISCARD ALL): an SQL cursor
// (a portal too) runs only as an SQL FETCH from it would run, and nothing
// else does.
func (s *session) executeOther(portal string) error {
	var d decision
	if portal == "" {
		d = s.refusal(&Error{Code: "34000", Msg: `portal "" does not exist`}) // invalid_cursor_name
	} else {
		d = s.srv.cfg.Enforcer.decide(s, "FETCH ALL FROM "+pgx.Identifier{portal}.Sanitize())
		if d.err == nil {
			_, d.err = s.checkNamed(&d, nil, false)
		}
	}
	if d.err == nil {
		s.audit(d)
		s.queueRecords(d, 1)
		s.settings.sent(rewrite.Effect{}, nil)
		return nil
	}
	return s.refuseAhead(d)
}

// executed records an execution of ps: its effects on the session's
// settings and on named objects.
func (s *session) executed(ps *preparedStmt) {
	var ran *atomic.Int32
	if ps.op != nil {
		ran = new(atomic.Int32)
		s.applyNamed(*ps.op, ran)
	}
	s.settings.sent(ps.effect, ran)
	if ps.effect.CopyIn {
		s.copySent()
	}
}

// refusal is a decision refusing with err (a name mandate cannot vouch
// for, a bad token, an assume not permitted): audited for whoever is
// acting now.
func (s *session) refusal(err error) decision {
	who := s.principal()
	return decision{err: err, scope: policy.Scope{Subject: who.Subject, Actors: who.Actors}}
}

// portalCheck re-decides what a portal runs: a refusal, or "bound under
// other grants" when it no longer decides as it did when the portal was
// bound; no error when it still does.
func (s *session) portalCheck(p *boundPortal, portal string) decision {
	var d decision
	same := true
	switch {
	case p.ps != nil:
		d = s.redecide(p.ps)
		same = d.sql == p.ps.forwarded
	case p.sql != nil:
		d = s.srv.cfg.Enforcer.decide(s, p.sql.text)
		same = len(d.result.Statements) == 1 && d.result.Statements[0].SQL == p.sql.forwarded
	}
	if d.err == nil && !same {
		d.err = &Error{Code: codeInsufficientPriv,
			Msg:  fmt.Sprintf("portal %q was bound under other grants than the ones in force now", portal),
			Hint: "the identity, a delegation, a consent or a policy changed since; bind it again"}
	}
	return d
}

// bindGrace bounds how long after its Bind a portal's first Execute is
// taken to be covered by the Bind's decision without deciding again, as
// long as nothing that decision depended on changed: time alone may end a
// delegation or a token.
const bindGrace = 10 * time.Millisecond

// decisionStamp is what a decision depends on, cheap to compare: the
// settings in effect (search_path; the identity, by pointer, since every
// SET mandate.token makes another; the purpose), the versions of the live
// state, the catalog and the policies, and when, by the enforcer's clock.
type decisionStamp struct {
	at                       time.Time
	settings                 settingValues
	state, catalog, policies uint64
}

// stamp is the session's decisionStamp now.
func (s *session) stamp() decisionStamp {
	e := s.srv.cfg.Enforcer
	_, catalog := e.Catalogs.Current()
	return decisionStamp{at: e.now(), settings: s.settings.current(),
		state: e.State.Version(), catalog: catalog, policies: e.Engine.Snapshot().Version}
}

// covers reports whether a decision made after st still holds at now.
func (st decisionStamp) covers(now decisionStamp) bool {
	elapsed := now.at.Sub(st.at)
	return elapsed >= 0 && elapsed < bindGrace && st.settings.equal(now.settings) &&
		st.state == now.state && st.catalog == now.catalog && st.policies == now.policies
}

// refusalStatement names the statement a refusal's marker is parsed into
// ahead of a message that cannot itself be replaced (an Execute). The
// marker fails at Parse, so the statement never exists.
const refusalStatement = "mandate_refusal"

// refuseAhead queues d's refusal in front of the client's next message: the
// marker's error reaches the client in its place, and the upstream skips
// the rest of the batch until Sync, as after any error.
func (s *session) refuseAhead(d decision) error {
	s.audit(d)
	var err error
	u := s.upstream
	if u.wbuf, err = (&pgproto3.Parse{Name: refusalStatement, Query: s.refuse(d.err)}).Encode(u.wbuf); err != nil {
		return err
	}
	s.hideAnswer('1', nil)
	s.auditPlaceholder() // for the marker's error, which the client sees
	s.settings.refused()
	return nil
}

// onClose forgets a closed statement or portal.
func (s *session) onClose(m *pgproto3.Close) {
	if m.ObjectType == 'S' {
		delete(s.stmts, m.Name)
		if m.Name == "" {
			s.unnamed = nil
		} else {
			s.upstream.stmts.forget(m.Name)
		}
	}
	// A portal's record stays until its transaction ends (livePortal):
	// this Close may be skipped after an error and undone by ROLLBACK TO.
}
