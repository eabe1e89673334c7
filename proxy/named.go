package proxy

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/mandate-proxy/mandate/rewrite"
)

// SQL-level prepared statements (PREPARE/EXECUTE) and cursors
// (DECLARE/FETCH) keep the SQL they were rewritten into, and with it the
// grants of that moment. mandate remembers what each was created from and,
// before each EXECUTE or FETCH, decides that text again: if the result
// differs (another identity after SET mandate.token, a revoked delegation,
// a withdrawn consent, a reloaded policy) the statement is refused, and
// the client prepares or declares it again under the grants in force.
// (Protocol-level statements are re-prepared transparently: prepared.go.)
//
// What a name holds is what PostgreSQL ran, not what mandate decided: a
// DEALLOCATE, CLOSE or DISCARD ALL, a PREPARE or DECLARE may fail or be
// skipped (an earlier error in the transaction or the batch, DISCARD ALL
// in a block), and then the name still holds what it held before. So each
// name keeps the statements sent for it, newest first, each with its
// outcome as the upstream's answers tell it (sessionSettings.sent); until they
// come, a statement is taken to run only for later statements of its own
// segment (a Query, or the messages up to a Sync), since the upstream skips
// the rest of a segment after an error. A use that may reach more than one
// object is refused until the answers settle which.

// namedObject is one PREPARE or DECLARE sent for a name, or one drop of it
// (DEALLOCATE, CLOSE, DISCARD ALL), on top of what the name held before.
type namedObject struct {
	text      string        // the PREPARE or DECLARE statement as the client sent it
	forwarded string        // what mandate forwarded for it
	plain     bool          // a cursor without HOLD: it ends with its transaction
	drop      bool          // a drop: the name holds nothing if it ran
	segment   uint64        // the segment it was sent in
	ran       *atomic.Int32 // its outcome, from the upstream's answers
	prev      *namedObject  // what the name held before; still does if this did not run
}

// over reports whether o, which ran, left nothing under its name: a drop,
// or a plain cursor whose transaction ended (segments before ended did).
func (o *namedObject) over(ended uint64) bool {
	return o.drop || o.plain && ended > o.segment
}

// namedObjects holds a session's SQL prepared statements and cursors.
type namedObjects struct {
	prepared map[string]*namedObject
	cursors  map[string]*namedObject
}

func (n *namedObjects) table(k rewrite.Kind) map[string]*namedObject {
	switch k {
	case rewrite.KindPrepare, rewrite.KindExecute, rewrite.KindDeallocate:
		if n.prepared == nil {
			n.prepared = map[string]*namedObject{}
		}
		return n.prepared
	case rewrite.KindDeclare, rewrite.KindFetch, rewrite.KindClose:
		if n.cursors == nil {
			n.cursors = map[string]*namedObject{}
		}
		return n.cursors
	}
	return nil
}

// held lists what the upstream may hold under name in tbl for a statement
// sent now, newest first (more than one: mandate cannot tell which).
func (s *session) held(tbl map[string]*namedObject, name string) []*namedObject {
	ended := s.txEnded.Load()
	s.settleName(tbl, name, ended)
	var objs []*namedObject
	for o := tbl[name]; o != nil; o = o.prev {
		state := o.ran.Load()
		if state == stmtFailed {
			continue // it did not run: the name holds what it held before
		}
		// Until its answer comes, a statement is known to have run only to
		// the later statements of its own segment (if they run at all).
		switch sure := state == stmtReady || o.segment == s.segment; {
		case sure && o.over(ended):
			return objs
		case sure:
			return append(objs, o)
		case !o.drop:
			objs = append(objs, o) // made, or not: then what was there before
		}
	}
	return objs
}

// settleName forgets, under name, what no longer matters: statements that
// did not run, and what one that ran replaced.
func (s *session) settleName(tbl map[string]*namedObject, name string, ended uint64) {
	o := tbl[name]
	for o != nil && o.ran.Load() == stmtFailed {
		o = o.prev
	}
	switch {
	case o == nil || o.ran.Load() == stmtReady && o.over(ended):
		delete(tbl, name)
	case o.ran.Load() == stmtReady:
		o.prev = nil
		fallthrough
	default:
		tbl[name] = o
	}
}

// namedOp is what a statement does to the session's named objects.
type namedOp struct {
	kind      rewrite.Kind // KindPrepare, KindDeclare, KindDeallocate, KindClose, KindDiscard
	name      string       // "" with ALL
	plain     bool         // a DECLARE without HOLD
	text      string       // a PREPARE's or DECLARE's own text
	forwarded string
}

// namedOpOf is what st, whose text is text, does to named objects.
func namedOpOf(st rewrite.StmtInfo, text string) (namedOp, bool) {
	switch st.Kind {
	case rewrite.KindPrepare, rewrite.KindDeclare:
		return namedOp{kind: st.Kind, name: st.Name, plain: st.Kind == rewrite.KindDeclare && !st.Hold,
			text: text, forwarded: st.SQL}, st.Name != ""
	case rewrite.KindDeallocate, rewrite.KindClose:
		return namedOp{kind: st.Kind, name: st.Name}, true
	case rewrite.KindDiscard:
		return namedOp{kind: st.Kind}, st.All
	}
	return namedOp{}, false
}

// applyNamed records op as sent in the current segment; ran learns
// whether it ran. SQL statements and the protocol's share one name space,
// as do cursors and portals, so a drop on either side drops both.
func (s *session) applyNamed(op namedOp, ran *atomic.Int32) {
	if op.kind == rewrite.KindDiscard {
		s.dropAll(s.named.table(rewrite.KindDeallocate), ran)
		s.dropAll(s.named.table(rewrite.KindClose), ran)
		s.upstream.stmts.forget("")
		forgetNamedStatements(s.stmts)
		return // portals: see forgetProtocol
	}
	tbl := s.named.table(op.kind)
	switch {
	case op.kind == rewrite.KindPrepare || op.kind == rewrite.KindDeclare:
		tbl[op.name] = &namedObject{text: op.text, forwarded: op.forwarded, plain: op.plain,
			segment: s.segment, ran: ran, prev: tbl[op.name]}

	case op.name == "":
		s.dropAll(tbl, ran)
		s.forgetProtocol(op.kind, "")
	default:
		if tbl[op.name] != nil {
			tbl[op.name] = &namedObject{drop: true, segment: s.segment, ran: ran, prev: tbl[op.name]}
		}
		s.forgetProtocol(op.kind, op.name)
	}
}

// dropAll records a drop of every name in tbl (DEALLOCATE ALL, CLOSE ALL,
// DISCARD ALL).
func (s *session) dropAll(tbl map[string]*namedObject, ran *atomic.Int32) {
	for name, o := range tbl {
		tbl[name] = &namedObject{drop: true, segment: s.segment, ran: ran, prev: o}
	}
}

// checkNamed refuses an EXECUTE or FETCH whose object was made under other
// grants, or may be another than the one mandate decided; one it lets
// through gets, in d, the relations its object uses, for the audit record.
// With apply (a statement sent now, not one parsed for later) it also
// records the PREPAREs, DECLAREs and drops among them, in order, and
// returns, per statement, the cell that learns whether it ran (nil for the
// others). texts are the statements' own texts, in order.
func (s *session) checkNamed(d *decision, texts []string, apply bool) ([]*atomic.Int32, error) {
	var ran []*atomic.Int32
	copied := false
	for i, st := range d.result.Statements {
		if st.Kind == rewrite.KindExecute || st.Kind == rewrite.KindFetch {
			rels, err := s.checkName(st.Kind, st.Name, s.named.table(st.Kind))
			if err != nil {
				for _, r := range ran {
					if r != nil {
						r.Store(stmtFailed) // refused with the rest: never sent
					}
				}
				return nil, err
			}
			if !copied { // d.result may be the cache's: never write into it
				d.result.Statements = slices.Clone(d.result.Statements)
				copied = true
			}
			d.result.Statements[i].Relations = rels
			continue
		}
		text := ""
		if i < len(texts) {
			text = texts[i]
		}
		if op, ok := namedOpOf(st, text); ok && apply {
			if err := s.refuseTaken(op); err != nil {
				for _, r := range ran {
					if r != nil {
						r.Store(stmtFailed) // refused with the rest: never sent
					}
				}
				return nil, err
			}
			if ran == nil {
				ran = make([]*atomic.Int32, len(d.result.Statements))
			}
			ran[i] = new(atomic.Int32)
			s.applyNamed(op, ran[i])
		}
	}
	return ran, nil
}

// checkName re-decides everything that may run under name for an EXECUTE
// or FETCH (k): the SQL PREPARE or DECLARE in tbl and the protocol's
// statement or portal, whichever side made it (mandate cannot see which
// creation PostgreSQL accepted when both did). It returns the relations
// that uses.
func (s *session) checkName(k rewrite.Kind, name string, tbl map[string]*namedObject) ([]rewrite.RelationUse, error) {
	what, again, code := "prepared statement", "PREPARE", "26000" // invalid_sql_statement_name
	if k == rewrite.KindFetch {
		what, again, code = "cursor", "DECLARE", "34000" // invalid_cursor_name
	}
	if s.copyObject(k, name) {
		// PostgreSQL runs it, and then ignores Sync until the rows end,
		// inside a statement mandate did not see as a COPY (copyin.go).
		return nil, &Error{Code: codeFeatureUnsupported,
			Msg: fmt.Sprintf("%s %q runs a COPY, which mandate follows only as a statement of its own", what, name)}
	}
	objs := s.held(tbl, name)
	if len(objs) > 1 || len(objs) > 0 && k == rewrite.KindExecute && s.upstream.stmts.has(name) {
		return nil, ambiguous(k, name) // or mandate's statement cache holds the name
	}
	var rels []rewrite.RelationUse
	found, same := len(objs) > 0, true
	if found {
		now := s.srv.cfg.Enforcer.decide(s, objs[0].text)
		same = now.err == nil && len(now.result.Statements) == 1 && now.result.Statements[0].SQL == objs[0].forwarded
		if same {
			rels = now.result.Statements[0].Relations
		}
	}
	if texts, ok, sure := s.protocolObject(k, name); ok {
		// Parse's statements and Bind's portals share these name spaces:
		// SQL can run them around Bind's re-check.
		if !sure {
			return nil, ambiguous(k, name)
		}
		found = true
		for _, t := range texts {
			r, ok := t.decidesAsBefore(s)
			same = same && ok
			rels = append(rels, r...)
		}
	}
	switch {
	case !found:
		// Nothing mandate decided has this name: whatever the upstream
		// holds under it (a pooled backend's leftover, say) is not this
		// session's to run.
		return nil, &Error{Code: code, Msg: fmt.Sprintf("%s %q does not exist", what, name)}
	case !same:
		return nil, &Error{Code: codeInsufficientPriv,
			Msg:  fmt.Sprintf("%s %q was made under other grants than the ones in force now", what, name),
			Hint: fmt.Sprintf("the identity, a delegation, a consent or a policy changed since; %s it again", again)}
	}
	return rels, nil
}

// copyObject reports whether the protocol statement an EXECUTE names, or
// the portal a FETCH names, runs a COPY FROM STDIN.
func (s *session) copyObject(k rewrite.Kind, name string) bool {
	if k == rewrite.KindFetch {
		p := s.livePortal(name)
		return p != nil && p.ps != nil && p.ps.effect.CopyIn
	}
	ps := s.stmts[name]
	return ps != nil && ps.effect.CopyIn
}

// refuseTaken refuses a PREPARE of a name that surely holds a statement
// already, as PostgreSQL would (42P05), before it goes upstream: then a creation that fails there for that reason never rests
// on reading the failure from the answers (a defence in depth against
// answers read out of step). Where the answers still may say either (a
// drop or creation not answered yet), it goes, and they decide.
func (s *session) refuseTaken(op namedOp) error {
	switch op.kind {
	case rewrite.KindPrepare:
		ps := s.stmts[op.name]
		if s.surelyHeld(s.named.table(op.kind), op.name) || ps != nil && !ps.refused && ps.certain(s.segment) || s.upstream.stmts.has(op.name) {
			return &Error{Code: "42P05", Msg: fmt.Sprintf("prepared statement %q already exists", op.name)}
		}
	}
	// Not DECLARE: a WITH HOLD cursor declared in a transaction that rolled
	// back is gone, which mandate does not follow (red team round 8, H2), so
	// a refusal there could keep a name from ever being declared again.
	return nil
}

// surelyHeld reports whether name in tbl holds an object for a statement
// sent now, whatever answers are still to come.
func (s *session) surelyHeld(tbl map[string]*namedObject, name string) bool {
	ended := s.txEnded.Load()
	for o := tbl[name]; o != nil; o = o.prev {
		switch state := o.ran.Load(); {
		case state == stmtFailed:
			continue // the name holds what it held before
		case state == stmtReady || o.segment == s.segment:
			return !o.over(ended)
		default:
			return false // not answered yet: either may be
		}
	}
	return false
}

// ambiguous is the refusal of a name under which the upstream may hold
// another object than the last one mandate decided: one made again while
// the name was taken, or one whose drop or creation failed or has not
// been answered yet (k names the use: EXECUTE or Bind for statements,
// FETCH or Execute for cursors and portals).
func ambiguous(k rewrite.Kind, name string) *Error {
	what, code, drop, again := "prepared statement", "42P05", "DEALLOCATE", "PREPARE" // duplicate_prepared_statement
	if k == rewrite.KindFetch {
		what, code, drop, again = "cursor", "42P03", "CLOSE", "DECLARE" // duplicate_cursor
	}
	return &Error{Code: code,
		Msg:  fmt.Sprintf("%s %q may be another than the one last made under that name: a statement making or dropping it failed, or has not been answered yet", what, name),
		Hint: fmt.Sprintf("wait for the answers to earlier statements; if it persists, %s it and %s it again", drop, again)}
}

// decidedText is a statement's text and what mandate forwarded for it.
type decidedText struct {
	sql, forwarded string
	inert          bool // a refusal's marker or a setting's stand-in: nothing to re-decide
}

// decidesAsBefore reports whether t decides now as it did, and the
// relations it uses.
func (t decidedText) decidesAsBefore(s *session) ([]rewrite.RelationUse, bool) {
	if t.inert {
		return nil, true
	}
	now := s.srv.cfg.Enforcer.decide(s, t.sql)
	if now.err != nil || now.sql != t.forwarded {
		return nil, false
	}
	var rels []rewrite.RelationUse
	for _, st := range now.result.Statements {
		rels = append(rels, st.Relations...)
	}
	return rels, true
}

// protocolObject is what the extended-protocol statement an SQL EXECUTE
// names was prepared from, or what the portal a FETCH names was bound to;
// ok is false if there is none, sure is false when the upstream may hold
// something else under the name (its Parse or Bind failed, or has not been
// answered yet).
func (s *session) protocolObject(k rewrite.Kind, name string) (texts []decidedText, ok, sure bool) {
	if k == rewrite.KindFetch {
		p := s.livePortal(name)
		if p == nil {
			return nil, false, false
		}
		return p.runs(), true, p.certain(s.segment)
	}
	ps := s.stmts[name]
	if ps == nil {
		return nil, false, false
	}
	return []decidedText{ps.decided()}, true, !ps.twice && ps.certain(s.segment)
}

// forgetProtocol drops name (every name when "") from the protocol-side
// table that shares k's name space: Parse's statements for prepared
// statements, Bind's portals for cursors. Forgetting early is safe there:
// a Bind or Execute of a name mandate does not know is refused, and one it
// knows is trusted only once its Parse or Bind ran (prepared.go).
func (s *session) forgetProtocol(k rewrite.Kind, name string) {
	statements := k == rewrite.KindPrepare || k == rewrite.KindDeallocate
	if statements {
		s.upstream.stmts.forget(name) // DEALLOCATE reaches the cache's too
	}
	switch {
	case statements && name == "":
		forgetNamedStatements(s.stmts)
	case statements:
		delete(s.stmts, name)
	}
	// Portals are not forgotten here: a CLOSE or DISCARD ALL skipped after
	// an error and undone by ROLLBACK TO leaves the portal in place (red
	// team round 39). A portal record goes when its transaction ends
	// (livePortal); until then it is one more thing the name may hold.
}

// forgetNamedStatements empties stmts but for the unnamed statement, which
// DEALLOCATE ALL and DISCARD ALL leave to the session in PostgreSQL (its
// cached statement, if any, is prepared again at its next use).
func forgetNamedStatements(stmts map[string]*preparedStmt) {
	for name := range stmts {
		if name != "" {
			delete(stmts, name)
		}
	}
}
