package proxy

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/mandate-proxy/mandate/audit"
	"github.com/mandate-proxy/mandate/rewrite"
)

// A prepared statement keeps the SQL it was rewritten into at Parse, and
// with it the grants of that moment. Before each Bind mandate decides the
// client's SQL again (a cache hit when nothing changed); if the answer
// differs — a delegation revoked, a consent withdrawn, a policy reloaded —
// it re-prepares the statement under the same name first, and hides the
// upstream's answers to that from the client.

// preparedStmt is what mandate knows of one prepared statement.
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
	// shown counts the answers of each hidden type ('1', '3') passed to the
	// client in the segment being answered; the upstream loop's alone.
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
	ps := &preparedStmt{sql: m.Query, paramOIDs: append([]uint32(nil), m.ParameterOIDs...)}
	var d decision
	var o outcome
	m.Query, d, o = s.decideText(m.Query, false)
	ps.forwarded = m.Query
	if len(d.result.Statements) == 1 {
		ps.effect = d.result.Statements[0].Effect
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
	return nil
}

// nameTaken reports whether a statement of this name may exist upstream,
// made by Parse or by SQL PREPARE (a refused Parse's marker never exists),
// or by mandate's statement cache.
func (s *session) nameTaken(name string) bool {
	if ps, ok := s.stmts[name]; ok && !ps.refused {
		return true
	}
	_, ok := s.named.prepared[name]
	return ok || s.upstream.stmts.has(name)
}

// onBind re-decides the statement a Bind names and, when the decision
// changed, queues a re-prepare in front of the Bind.
func (s *session) onBind(m *pgproto3.Bind) error {
	ps := s.stmts[m.PreparedStatement]
	s.portals[m.DestinationPortal] = boundPortal{stmt: m.PreparedStatement, ps: ps, segment: s.segment}
	if ps == nil {
		return s.bindOther(m.PreparedStatement)
	}
	var d decision
	if ps.setting != nil {
		// Nothing to decide before it runs (executeSetting): the stand-in
		// carries nothing. A refusal below is audited for whoever acts now.
		d = s.settingRefusal(nil)
		d.sql = ps.forwarded
	} else {
		d = s.redecide(ps)
	}
	if _, sqlToo := s.named.prepared[m.PreparedStatement]; sqlToo && d.err == nil {
		// SQL PREPARE made the name too: either may be the one upstream.
		d.err = s.checkName(rewrite.KindExecute, m.PreparedStatement, s.named.prepared)
	}
	if ps.twice && d.err == nil {
		d.err = madeTwice(rewrite.KindExecute, m.PreparedStatement)
	}
	if d.err == nil && d.sql == ps.forwarded {
		if !ps.handled && s.srv.cfg.Audit != nil && !recordedFor(ps.record, d.scope) {
			// Another identity or purpose, the same rewrite: the record
			// names who runs it now.
			ps.record = s.recordFor(d)
		}
		return nil
	}
	ps.twice = false
	forwarded, refused, err := s.reprepare(m.PreparedStatement, ps.paramOIDs, d)
	if err != nil {
		return err
	}
	ps.forwarded, ps.refused = forwarded, refused
	if !refused {
		ps.record = s.auditRecord(d)
	}
	return nil
}

// boundPortal is a portal a Bind made: its statement, and the segment (the
// messages up to a Sync) it was bound in.
type boundPortal struct {
	stmt string
	// ps is what mandate knew of the statement at the Bind (nil: none of
	// the protocol's): the portal runs that one even once a Parse or Close
	// has replaced it under the name, as the unnamed statement often is.
	ps      *preparedStmt
	segment uint64
}

// redecide decides a protocol statement's text again, with the check an
// EXECUTE or FETCH in it makes of what it names.
func (s *session) redecide(ps *preparedStmt) decision {
	d := s.srv.cfg.Enforcer.decide(s, ps.sql)
	if d.err == nil && needsNamedCheck(d) {
		d.err = s.checkNamed(d, []string{ps.sql})
	}
	return d
}

// bindOther checks a Bind of a statement no Parse of this session made:
// one made with SQL PREPARE (the two share a name space) is re-decided as
// an SQL EXECUTE of it would be, and any other name is refused.
func (s *session) bindOther(name string) error {
	d := s.srv.cfg.Enforcer.decide(s, "EXECUTE "+pgx.Identifier{name}.Sanitize())
	if d.err == nil {
		if d.err = s.checkNamed(d, nil); d.err == nil {
			return nil
		}
	}
	_, _, err := s.reprepare(name, nil, d)
	return err
}

// reprepare queues, in front of the client's Bind, a Close and a Parse that
// make the upstream statement name d's rewrite, or a refusal marker when d
// was refused (its error then reaches the client in the Bind's place).
func (s *session) reprepare(name string, paramOIDs []uint32, d decision) (forwarded string, refused bool, err error) {
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
	s.hideAnswer('1', nil)
	if refused {
		s.auditPlaceholder() // for the marker's error, which the client sees
		s.settings.refused()
	}
	return forwarded, refused, nil
}

// onExecute queues the audit record of the statement a portal runs and
// records what it does to the session.
func (s *session) onExecute(m *pgproto3.Execute) error {
	p, bound := s.portals[m.Portal]
	ps := p.ps
	switch {
	case !bound && m.Portal != "":
		// No Bind of this session made the portal: an SQL cursor (a portal
		// too) or nothing. Run it only as an SQL FETCH from it would run.
		d := s.srv.cfg.Enforcer.decide(s, "FETCH ALL FROM "+pgx.Identifier{m.Portal}.Sanitize())
		if d.err == nil {
			d.err = s.checkNamed(d, nil)
		}
		if d.err == nil {
			s.audit(d)
			s.queueRecords(d, 1)
			s.settings.sent(rewrite.Effect{})
			return nil
		}
		if err := s.refuseAhead(d); err != nil {
			return err
		}
		s.settings.refused()
	case ps == nil:
		// A statement made with SQL PREPARE (bindOther checked it), or the
		// upstream answers "does not exist": either way one answer, which
		// the audit trail must not take for the next statement's.
		s.auditPlaceholder()
		s.settings.sent(rewrite.Effect{})
	case ps.refused:
		s.settings.refused()
	case ps.setting != nil:
		return s.executeSetting(*ps.setting)
	case ps.handled:
		s.auditPlaceholder()
		s.settings.sent(ps.effect)
	default:
		if p.segment != s.segment {
			// A portal left suspended by an earlier Sync would go on with
			// the rewrite it was bound with: re-decided, as an SQL FETCH is.
			d := s.portalCheck(ps, m.Portal)
			if _, sqlToo := s.named.cursors[m.Portal]; sqlToo && d.err == nil {
				// DECLARE made the name too: either may be the one upstream.
				d.err = s.checkName(rewrite.KindFetch, m.Portal, s.named.cursors)
			}
			if d.err != nil {
				if err := s.refuseAhead(d); err != nil {
					return err
				}
				s.settings.refused()
				return nil
			}
		}
		s.queueExecution(ps.record)
		s.settings.sent(ps.effect)
	}
	return nil
}

// executeSetting checks a SET or RESET of mandate.* at its Execute and
// records what it changes, as a simple Query of it would; a refusal's
// error reaches the client in the Execute's place.
func (s *session) executeSetting(st rewrite.Setting) error {
	c, err := s.mandateChange(st)
	if err != nil {
		return s.refuseAhead(s.settingRefusal(err))
	}
	s.auditPlaceholder()
	s.settings.set(c)
	return nil
}

// portalCheck re-decides the statement behind a portal: a refusal, or
// "bound under other grants" when it no longer decides as it did when the
// portal was bound; no error when it still does.
func (s *session) portalCheck(ps *preparedStmt, portal string) decision {
	d := s.redecide(ps)
	if d.err == nil && d.sql != ps.forwarded {
		d.err = &Error{Code: codeInsufficientPriv,
			Msg:  fmt.Sprintf("portal %q was bound under other grants than the ones in force now", portal),
			Hint: "the identity, a delegation, a consent or a policy changed since; bind it again"}
	}
	return d
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
	} else {
		delete(s.portals, m.Name)
	}
}
