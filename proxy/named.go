package proxy

import (
	"fmt"

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

// namedObject is a prepared statement or cursor and what made it.
type namedObject struct {
	text      string // the PREPARE or DECLARE statement as the client sent it
	forwarded string // what mandate forwarded for it
	twice     bool   // made again while taken: which text runs is unknown
	hold      bool   // a WITH HOLD cursor: open until closed
	txEnds    uint64 // session.txEnds when decided: a plain cursor ends with its transaction
}

// open reports whether the object may still exist upstream: a prepared
// statement or held cursor until dropped, a plain cursor until the end of
// its transaction (a ReadyForQuery outside one seen since).
func (o namedObject) open(k rewrite.Kind, txEnds uint64) bool {
	return k == rewrite.KindPrepare || o.hold || o.txEnds == txEnds
}

// namedObjects holds a session's SQL prepared statements and cursors.
type namedObjects struct {
	prepared map[string]namedObject
	cursors  map[string]namedObject
}

func (n *namedObjects) table(k rewrite.Kind) map[string]namedObject {
	switch k {
	case rewrite.KindPrepare, rewrite.KindExecute, rewrite.KindDeallocate:
		if n.prepared == nil {
			n.prepared = map[string]namedObject{}
		}
		return n.prepared
	case rewrite.KindDeclare, rewrite.KindFetch, rewrite.KindClose:
		if n.cursors == nil {
			n.cursors = map[string]namedObject{}
		}
		return n.cursors
	}
	return nil
}

// checkNamed refuses an EXECUTE or FETCH whose object was made under other
// grants; it records PREPARE and DECLARE and forgets DEALLOCATE and CLOSE.
// texts are the statements' own texts, in order.
func (s *session) checkNamed(d decision, texts []string) error {
	for i, st := range d.result.Statements {
		tbl := s.named.table(st.Kind)
		if tbl == nil {
			if st.Kind == rewrite.KindDiscard && st.All {
				s.forgetNamed()
			}
			continue
		}
		// SQL statements and the protocol's share one name space, as do
		// cursors and portals: every use checks what either side made under
		// the name, and a drop on either side drops both.
		switch st.Kind {
		case rewrite.KindPrepare, rewrite.KindDeclare:
			if st.Name != "" && i < len(texts) {
				// PostgreSQL refuses a PREPARE or DECLARE of a name in use and
				// keeps the old one, unless that one had failed: mark the name.
				txEnds := s.txEnds.Load()
				old, taken := tbl[st.Name]
				// A cached statement's name is taken too (stmtcache.go).
				cached := st.Kind == rewrite.KindPrepare && s.upstream.stmts.has(st.Name)
				tbl[st.Name] = namedObject{text: texts[i], forwarded: st.SQL, hold: st.Hold, txEnds: txEnds,
					twice: taken && old.open(st.Kind, txEnds) || cached}
			}
		case rewrite.KindDeallocate, rewrite.KindClose:
			if st.Name == "" {
				clear(tbl) // ALL
			} else {
				delete(tbl, st.Name)
			}
			s.forgetProtocol(st.Kind, st.Name)
		case rewrite.KindExecute, rewrite.KindFetch:
			if err := s.checkName(st.Kind, st.Name, tbl); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkName re-decides everything that may run under name for an EXECUTE
// or FETCH (k): the SQL PREPARE or DECLARE in tbl and the protocol's
// statement or portal, whichever side made it (mandate cannot see which
// creation PostgreSQL accepted when both did).
func (s *session) checkName(k rewrite.Kind, name string, tbl map[string]namedObject) error {
	what, again, code := "prepared statement", "PREPARE", "26000" // invalid_sql_statement_name
	if k == rewrite.KindFetch {
		what, again, code = "cursor", "DECLARE", "34000" // invalid_cursor_name
	}
	found, same := false, true
	if obj, ok := tbl[name]; ok {
		found = true
		if obj.twice {
			return madeTwice(k, name)
		}
		now := s.srv.cfg.Enforcer.decide(s, obj.text)
		same = now.err == nil && len(now.result.Statements) == 1 && now.result.Statements[0].SQL == obj.forwarded
	}
	if ps := s.protocolObject(k, name); ps != nil {
		// Parse's statements and Bind's portals share these name spaces:
		// SQL can run them around Bind's re-check.
		if ps.twice {
			return madeTwice(k, name)
		}
		found = true
		now := s.srv.cfg.Enforcer.decide(s, ps.sql)
		same = same && (ps.refused || ps.handled || now.err == nil && now.sql == ps.forwarded)
	}
	switch {
	case !found:
		// Nothing mandate decided has this name: whatever the upstream
		// holds under it (a pooled backend's leftover, say) is not this
		// session's to run.
		return &Error{Code: code, Msg: fmt.Sprintf("%s %q does not exist", what, name)}
	case !same:
		return &Error{Code: codeInsufficientPriv,
			Msg:  fmt.Sprintf("%s %q was made under other grants than the ones in force now", what, name),
			Hint: fmt.Sprintf("the identity, a delegation, a consent or a policy changed since; %s it again", again)}
	}
	return nil
}

// madeTwice is the refusal of a name made again while in use (k names the
// use: EXECUTE or Bind for statements, FETCH or Execute for cursors).
func madeTwice(k rewrite.Kind, name string) *Error {
	what, code, again := "prepared statement", "42P05", "PREPARE" // duplicate_prepared_statement
	if k == rewrite.KindFetch {
		what, code, again = "cursor", "42P03", "DECLARE" // duplicate_cursor
	}
	return &Error{Code: code, Msg: fmt.Sprintf("%s %q was made twice", what, name),
		Hint: fmt.Sprintf("drop it (DEALLOCATE or CLOSE) and %s it again", again)}
}

// protocolObject is the extended-protocol statement an SQL EXECUTE names,
// or the statement behind the portal a FETCH names; nil if none.
func (s *session) protocolObject(k rewrite.Kind, name string) *preparedStmt {
	if k == rewrite.KindFetch {
		p, ok := s.portals[name]
		if !ok {
			return nil
		}
		name = p.stmt
	}
	return s.stmts[name]
}

// forgetProtocol drops name (every name when "") from the protocol-side
// table that shares k's name space: Parse's statements for prepared
// statements, Bind's portals for cursors.
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
	case name == "":
		clear(s.portals)
	default:
		delete(s.portals, name)
	}
}

// forgetNamed forgets every named statement and every portal, SQL or
// protocol: DISCARD ALL dropped them all upstream.
func (s *session) forgetNamed() {
	s.named = namedObjects{}
	s.upstream.stmts.forget("")
	forgetNamedStatements(s.stmts)
	clear(s.portals)
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
