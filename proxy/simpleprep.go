package proxy

import "github.com/jackc/pgx/v5/pgproto3"

// A simple query carries its constants in its text, so every instance of a
// statement is new to PostgreSQL, which parses, analyses and plans each;
// and mandate's rewrite (filters, masks) makes each of those dearer. So, as
// for unnamed Parses (stmtcache.go), mandate pays back what it adds: a
// simple query whose rewrite is a template (rewrite.Template.Prepare: its
// compared integers become int4 parameters) is sent, from the
// second time its prepared form is seen on a connection, as
// Bind/Describe/Execute/Sync of a statement mandate prepares once under a
// name of its own. The client sees the simple query's answers: the
// upstream's BindComplete, NoData, and the answers to what mandate adds
// (Parse, Close) are hidden; RowDescription, DataRows, CommandComplete,
// notices, errors and ReadyForQuery pass as they are. PostgreSQL runs the
// statement as any prepared one: custom plans first, then a generic plan
// when it costs no more (plan_cache_mode decides).
//
// What a simple query does besides, the translation does too: it drops
// the unnamed statement (a Close when the client has one) and leaves no
// unnamed portal (a Close when a transaction block may keep it). Nothing
// is decided differently: the decision is the simple query's, made before.
// Texts mandate did not rewrite, several statements, and queries in a
// failed transaction or inside an unsynced extended-protocol batch go as
// they are.

// queryAsPrepared sends the simple query decided as d (of the client's
// text sql) as the execution of a cached prepared statement, if it can;
// false when the Query is to go as it is.
func (s *session) queryAsPrepared(sql string, d decision) (bool, error) {
	max := s.srv.cfg.UpstreamStatementCache
	if max <= 0 || s.unsynced || s.txStatus.Load() == 'E' || d.result.Template == nil ||
		len(d.result.Statements) != 1 || !d.result.Statements[0].Rewritten {
		return false, nil
	}
	if err := s.dropStaleStatements(); err != nil {
		return false, err
	}
	p, ok := d.result.Template.Prepare(sql, d.result.Literals)
	if !ok {
		return false, nil
	}
	c := &s.upstream.stmts
	key := c.key(p.SQL, p.OIDs, s.settings.current().literals)
	e := c.get(key)
	if e != nil {
		switch e.state.Load() {
		case stmtPending:
			return false, nil // its Parse is still unanswered: this once, the text
		case stmtFailed:
			// PostgreSQL refused the prepared form (the client saw why): the
			// text goes from now on.
			c.remove(e)
			c.refuse(key, max)
			return false, nil
		}
		s.srv.metrics.stmtCacheHit.Inc()
	} else {
		if c.refused(key) || !c.again(key, max) {
			return false, nil
		}
		var evicted string
		e, evicted = c.add(key, p.SQL, p.OIDs, max)
		if evicted != "" {
			if err := s.injectClose('S', evicted); err != nil {
				return false, err
			}
		}
		if err := s.injectPrepare(e); err != nil {
			return false, err
		}
	}
	if s.unnamedLive {
		if err := s.injectClose('S', ""); err != nil {
			return false, err
		}
		s.unnamedLive = false
	}
	u := s.upstream
	var err error
	if u.wbuf, err = (&pgproto3.Bind{PreparedStatement: e.name, Parameters: p.Values}).Encode(u.wbuf); err != nil {
		return false, err
	}
	s.hideAnswer('2', nil)
	u.wbuf, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(u.wbuf)
	s.hideAnswer('n', nil) // RowDescription passes; NoData, for a statement without rows, is hidden
	u.wbuf, _ = (&pgproto3.Execute{}).Encode(u.wbuf)
	if !s.idle() {
		// In a transaction block the portal would outlive the Sync.
		if err := s.injectClose('P', ""); err != nil {
			return false, err
		}
	}
	u.wbuf, _ = (&pgproto3.Sync{}).Encode(u.wbuf)
	return true, nil
}
