package proxy

import (
	"fmt"
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
	refused   bool           // the marker was prepared: executions fail upstream
	handled   bool           // a mandate.* setting's stand-in: executions are not audited
	twice     bool           // parsed under a name in use: which text runs is unknown
	effect    rewrite.Effect // on the session, at each execution
}

// drops are upstream answers to messages mandate injected, to be hidden
// from the client. Each belongs to a segment (the messages up to a Sync):
// answers come in order, so within its segment an expected CloseComplete
// or ParseComplete is the next one of its type; an ErrorResponse instead of
// an expected ParseComplete is the client's to see (the re-prepare was
// refused), and a segment that ended (ReadyForQuery) takes its unmet
// expectations with it (an earlier error made the upstream skip them).
type drops struct {
	mu      sync.Mutex
	pending []drop
	synced  uint64       // ReadyForQuery answers seen: the segment being answered
	n       atomic.Int32 // len(pending), read without the lock on the per-row path
}

type drop struct {
	segment uint64
	typ     byte
}

func (d *drops) expect(segment uint64, types ...byte) {
	d.mu.Lock()
	for _, t := range types {
		d.pending = append(d.pending, drop{segment, t})
	}
	d.n.Store(int32(len(d.pending)))
	d.mu.Unlock()
}

// hide reports whether an upstream message must not reach the client.
func (d *drops) hide(typ byte) bool {
	if typ != 'Z' && d.n.Load() == 0 {
		return false // the common case: nothing injected, no lock per row
	}
	d.mu.Lock()
	defer func() { d.n.Store(int32(len(d.pending))); d.mu.Unlock() }()
	if typ == 'Z' {
		d.synced++
		for len(d.pending) > 0 && d.pending[0].segment < d.synced {
			d.pending = d.pending[1:]
		}
		return false
	}
	if len(d.pending) == 0 || d.pending[0].segment != d.synced {
		return false
	}
	switch head := d.pending[0].typ; {
	case head == typ:
		d.pending = d.pending[1:]
		return true
	case head == '1' && typ == 'E':
		d.pending = d.pending[1:]
	}
	return false
}

// onParse decides a Parse and remembers the statement.
func (s *session) onParse(m *pgproto3.Parse) {
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
		s.searchPath.refused() // the marker fails at Parse
	case handled:
		ps.handled = true
	}
	if m.Name != "" && s.nameTaken(m.Name) {
		// PostgreSQL refuses a named Parse of a name in use and keeps the
		// statement there, unless that one had failed upstream: mandate
		// cannot tell which text runs, so a Bind of the name is refused
		// (and the name freed) until it is prepared again.
		ps.twice = true
	}
	s.stmts[m.Name] = ps
}

// nameTaken reports whether a statement of this name may exist upstream,
// made by Parse or by SQL PREPARE (a refused Parse's marker never exists).
func (s *session) nameTaken(name string) bool {
	if ps, ok := s.stmts[name]; ok && !ps.refused {
		return true
	}
	_, ok := s.named.prepared[name]
	return ok
}

// onBind re-decides the statement a Bind names and, when the decision
// changed, queues a re-prepare in front of the Bind.
func (s *session) onBind(m *pgproto3.Bind) error {
	s.portals[m.DestinationPortal] = boundPortal{stmt: m.PreparedStatement, segment: s.segment}
	ps := s.stmts[m.PreparedStatement]
	if ps == nil {
		return s.bindOther(m.PreparedStatement)
	}
	d := s.redecide(ps)
	if _, sqlToo := s.named.prepared[m.PreparedStatement]; sqlToo && d.err == nil {
		// SQL PREPARE made the name too: either may be the one upstream.
		d.err = s.checkName(rewrite.KindExecute, m.PreparedStatement, s.named.prepared)
	}
	if ps.twice && d.err == nil {
		d.err = madeTwice(rewrite.KindExecute, m.PreparedStatement)
	}
	if d.err == nil && d.sql == ps.forwarded {
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
	stmt    string
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
	s.drops.expect(s.segment, '3', '1')
	if refused {
		s.auditPlaceholder() // for the marker's error, which the client sees
		s.searchPath.refused()
	}
	return forwarded, refused, nil
}

// onExecute queues the audit record of the statement a portal runs and
// records what it does to the session.
func (s *session) onExecute(m *pgproto3.Execute) error {
	p, bound := s.portals[m.Portal]
	ps := s.stmts[p.stmt]
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
			s.searchPath.sent(rewrite.Effect{})
			return nil
		}
		if err := s.refuseAhead(d); err != nil {
			return err
		}
		s.searchPath.refused()
	case ps == nil:
		// A statement made with SQL PREPARE (bindOther checked it), or the
		// upstream answers "does not exist": either way one answer, which
		// the audit trail must not take for the next statement's.
		s.auditPlaceholder()
		s.searchPath.sent(rewrite.Effect{})
	case ps.refused:
		s.searchPath.refused()
	case ps.handled:
		s.auditPlaceholder()
		s.searchPath.sent(ps.effect)
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
				s.searchPath.refused()
				return nil
			}
		}
		s.queueExecution(ps.record)
		s.searchPath.sent(ps.effect)
	}
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
	s.drops.expect(s.segment, '1')
	s.auditPlaceholder() // for the marker's error, which the client sees
	s.searchPath.refused()
	return nil
}

// onClose forgets a closed statement or portal.
func (s *session) onClose(m *pgproto3.Close) {
	if m.ObjectType == 'S' {
		delete(s.stmts, m.Name)
	} else {
		delete(s.portals, m.Name)
	}
}
