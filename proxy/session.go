package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/mandate-proxy/mandate/rewrite"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// session is one client connection and its upstream connection.
type session struct {
	srv  *Server
	id   uint64
	log  *slog.Logger
	conn net.Conn // the client; a *tls.Conn after SSLRequest
	tls  bool
	unix bool

	clientHost string // the client's address without its port (for policy context)

	backend *pgproto3.Backend

	// wmu orders writes to the client: the upstream loop copies results,
	// the client loop may answer with errors of its own.
	wmu sync.Mutex
	cw  *bufio.Writer

	pid    uint32 // the BackendKeyData we handed out
	secret []byte

	user     string    // startup user name
	login    principal // who authenticated
	upstream *upstreamConn

	// Enforcement state, owned by the client loop unless noted.
	settings       sessionSettings // search_path, SET mandate.token and mandate.purpose
	stmts          map[string]*preparedStmt
	sent           [4]int       // the client's Parses and Closes in the segment being sent (drops.shown's counterpart)
	prepareAfter   *cachedStmt  // to prepare right after the client's Parse (stmtcache.go)
	unnamed        *cachedStmt  // the cached statement the unnamed one stands for (stmtcache.go)
	unnamedLive    bool         // the client parsed an unnamed statement since its last simple query (simpleprep.go)
	named          namedObjects // SQL PREPARE and DECLARE (named.go)
	portals        map[string]*boundPortal
	segment        uint64     // Syncs and Queries forwarded: the segment being sent
	lastDelegation string     // delegation of the last allowed statement
	catalogStale   bool       // DDL was forwarded: reload the catalog once it committed
	placeholder    bool       // a custom parameter was set: its name outlives DISCARD ALL, so the connection is not pooled
	markers        *markers   // shared with the upstream loop
	drops          drops      // shared with the upstream loop
	trail          auditTrail // shared with the upstream loop
	copyIn         copyWindow // a COPY FROM STDIN forwarded (copyin.go)
	copyWait       atomic.Pointer[copyStart]
	copyProgress   copyProgress // the upstream loop's
	copyNth        uint64       // COPY FROM STDIN windows opened in segment copyNthAt
	copyNthAt      uint64
	upGone         chan struct{} // closed when the upstream loop ends

	// pending counts responses still owed by the upstream: one
	// ReadyForQuery per Query, Sync or FunctionCall forwarded.
	pending  atomic.Int32
	txStatus atomic.Uint32 // last ReadyForQuery status: 'I', 'T' or 'E'
	answered atomic.Uint64 // ReadyForQuery answers seen: the segments answered
	txEnded  atomic.Uint64 // segments before it ended their transactions: their non-hold cursors are gone
	stopping atomic.Bool   // server shutdown asked this session to end when idle

	// Ending: the upstream loop's error (errParked when the client loop
	// stopped it to pool the connection), and whether a cancel may still be
	// forwarded to the upstream backend, which another session may own next.
	parking  atomic.Bool
	draining atomic.Bool // the client's Terminate went upstream behind work in flight
	upErr    error
	unsynced bool // extended-protocol messages forwarded since the last Sync
	cancelMu sync.Mutex
	released bool

	// lexUnsafe holds the error ending the session once the upstream
	// reports a setting under which it scans SQL unlike the rewriter.
	lexUnsafe  atomic.Pointer[Error]
	deadlineMu sync.Mutex // see updateReadDeadline
	closed     atomic.Bool
}

func (srv *Server) newSession(c net.Conn) *session {
	id := srv.nextID.Add(1)
	_, unix := c.(*net.UnixConn)
	c = newRawConn(c)
	s := &session{srv: srv, id: id, conn: c, unix: unix,
		log:     srv.log.With("session", id, "client", c.RemoteAddr().String()),
		markers: newMarkers(), stmts: map[string]*preparedStmt{}, portals: map[string]*boundPortal{}}
	s.clientHost = c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(s.clientHost); err == nil {
		s.clientHost = host
	}
	s.txStatus.Store('I')
	return s
}

// run is the session's whole life, step by step (see doc.go).
func (s *session) run() {
	defer s.conn.Close()
	_ = s.conn.SetDeadline(time.Now().Add(s.srv.cfg.AuthTimeout))

	res, err := s.negotiate()
	if err != nil {
		s.fail(err)
		return
	}
	if res.cancel != nil {
		s.handleCancel(res.cancel)
		return
	}
	s.cw = bufio.NewWriterSize(s.conn, clientWriteBuffer)
	// The relay's pump reads on from where authentication stops.
	s.backend = pgproto3.NewBackend(&exactReader{r: s.conn}, io.Discard)
	s.backend.SetMaxBodyLen(maxAuthMessageLen) // it reads only authentication messages

	if n := s.srv.active.Add(1); n > int64(s.srv.cfg.MaxClientConns) {
		s.srv.active.Add(-1)
		s.srv.metrics.connsRejected.WithLabelValues("too_many").Inc()
		s.fail(fatalf(codeTooManyConnections, "sorry, too many clients already", nil))
		return
	}
	defer s.srv.active.Add(-1)
	s.srv.metrics.connsActive.Inc()
	defer s.srv.metrics.connsActive.Dec()

	err = s.start(res.startup)
	if s.upstream != nil {
		defer s.releaseUpstream()
		defer s.srv.unregister(s)
	}
	if err != nil {
		s.fail(err)
		return
	}
	_ = s.conn.SetDeadline(time.Time{})
	s.log.Debug("session ready", "user", s.user)
	s.relay()
}

// start authenticates the client, connects upstream and says ready.
func (s *session) start(sm *pgproto3.StartupMessage) error {
	if s.srv.cfg.RequireTLS && !s.tls && !s.unix {
		s.srv.metrics.connsRejected.WithLabelValues("tls_required").Inc()
		return fatalf(codeInvalidAuthSpec, "TLS is required: connect with sslmode=require", nil)
	}
	params, unrecognized, err := upstreamParams(sm)
	if err != nil {
		return err
	}
	// The catalog, the policies and the state are those of the upstream
	// URL's database: an enforcing proxy serves that one only.
	if db := sm.Parameters["database"]; s.srv.cfg.Enforcer != nil && db != "" && db != s.srv.upstream.Database {
		return fatalf("3D000", fmt.Sprintf("database %q is not served by this mandate (it serves %q)", db, s.srv.upstream.Database), nil)
	}
	path, ok := startupSearchPath(params)
	if !ok {
		return fatalf("22023", "invalid value for parameter \"search_path\": list syntax is invalid", nil)
	}
	if path == nil && s.srv.cfg.Enforcer != nil {
		// The upstream backend starts with the default path mandate
		// decides by, not with whatever its role's or database's default
		// is when it starts (red team round 42b: an ALTER ROLE … SET
		// search_path put a schema ahead of public on new backends only,
		// and an overload there ran past the allow-list).
		if cat, _ := s.srv.cfg.Enforcer.Catalogs.Current(); cat != nil && cat.SearchPath != nil {
			params["search_path"], path = cat.SearchPathSetting, cat.SearchPath
		}
	}
	s.settings.start(path)
	s.user = sm.Parameters["user"]
	login, err := s.authenticate(s.user)
	if err != nil {
		return err
	}
	s.login = login
	up, err := s.srv.acquireUpstream(context.Background(), sm.Parameters["database"], params)
	if err != nil {
		return err
	}
	if s.srv.cfg.Enforcer != nil {
		for name, v := range up.params {
			if err := scansLikeUpstream(name, v); err != nil {
				up.close()
				return err
			}
		}
	}
	s.upstream = up
	// Registered only once upstream is set: from here on other goroutines
	// (cancel, shutdown) may reach the session.
	if err := s.srv.register(s); err != nil {
		up.close()
		return err
	}
	return s.ready(sm.ProtocolVersion, unrecognized)
}

// ready ends the startup phase as PostgreSQL would: AuthenticationOk, the
// upstream's ParameterStatus, our BackendKeyData, ReadyForQuery.
func (s *session) ready(version uint32, unrecognized []string) error {
	if version != protocol30 || len(unrecognized) > 0 {
		s.queue(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unrecognized})
	}
	s.queue(&pgproto3.AuthenticationOk{})
	for k, v := range s.upstream.params {
		switch k {
		case "session_authorization":
			v = s.user // the upstream role is mandate's, not the client's
		case "is_superuser":
			v = "off"
		}
		s.queue(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	s.queue(&pgproto3.BackendKeyData{ProcessID: s.pid, SecretKey: s.secret})
	s.queue(&pgproto3.ReadyForQuery{TxStatus: s.upstream.txStatus})
	return s.flush()
}

// queue encodes a message into the client buffer (under wmu).
func (s *session) queue(msg pgproto3.BackendMessage) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.queueLocked(msg)
}

func (s *session) queueLocked(msg pgproto3.BackendMessage) {
	if e, ok := msg.(*pgproto3.ErrorResponse); ok {
		s.srv.metrics.errors.WithLabelValues(e.Code).Inc()
	}
	buf, err := msg.Encode(nil)
	if err != nil {
		return
	}
	s.cw.Write(buf)
}

func (s *session) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.cw.Flush()
}

// send writes one message to the client at once.
func (s *session) send(msg pgproto3.BackendMessage) error {
	s.queue(msg)
	return s.flush()
}

// fail reports err to the client, if it can still hear, and logs it.
func (s *session) fail(err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	var pe *Error
	if errors.As(err, &pe) || isPgError(err) {
		s.log.Info("session refused", "err", err)
	} else {
		s.log.Warn("session error", "err", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !errors.As(err, &pe) {
		return // the client is gone or stalled; nothing to tell it
	}
	if s.cw == nil {
		s.cw = bufio.NewWriterSize(s.conn, 512)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = s.send(toErrorResponse(err))
}

func isPgError(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg)
}

// handleCancel forwards a client's CancelRequest to the upstream
// connection of the session it names. Unknown keys are dropped silently,
// as PostgreSQL does.
func (s *session) handleCancel(cr *pgproto3.CancelRequest) {
	target := s.srv.lookupCancel(cr.ProcessID, cr.SecretKey)
	if target == nil {
		s.srv.metrics.cancels.WithLabelValues("unknown").Inc()
		return
	}
	target.cancelMu.Lock()
	defer target.cancelMu.Unlock()
	if target.released {
		// Its upstream backend may serve another session by now.
		s.srv.metrics.cancels.WithLabelValues("unknown").Inc()
		return
	}
	s.srv.metrics.cancels.WithLabelValues("forwarded").Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := target.upstream.cancel(ctx); err != nil {
		s.log.Warn("cancel request not forwarded", "err", err)
	}
}

// releaseUpstream pools the session's upstream connection when the session
// ended cleanly and DISCARD ALL resets it (see upstreamPool), and closes it
// otherwise.
func (s *session) releaseUpstream() {
	// A cancel forwarded for this session has reached the upstream by now
	// (so at worst it fails DISCARD ALL below); none will be forwarded later.
	s.cancelMu.Lock()
	s.released = true
	s.cancelMu.Unlock()
	u := s.upstream
	released := s.srv.metrics.upstreamReleased
	if !errors.Is(s.upErr, errParked) {
		released.WithLabelValues("closed").Inc()
		u.close()
		return
	}
	if err := u.reset(); err != nil {
		s.log.Info("upstream connection not reused", "err", err)
		released.WithLabelValues("reset_failed").Inc()
		u.close()
		return
	}
	if !s.srv.pool.put(u) {
		released.WithLabelValues("closed").Inc()
		u.close()
		return
	}
	released.WithLabelValues("pooled").Inc()
}

// beginShutdown asks the session to end once it is idle. An idle session
// is woken now by an expired read deadline; a busy one ends when its
// statement and transaction are done (see relayUpstream).
func (s *session) beginShutdown() {
	s.stopping.Store(true)
	if s.idle() {
		_ = s.conn.SetReadDeadline(time.Now())
	}
}

func (s *session) idle() bool {
	return s.pending.Load() == 0 && s.txStatus.Load() == 'I'
}

// forceClose ends the session now (shutdown timeout reached).
func (s *session) forceClose() {
	// Deadlines first: a Close waits for a pump's callback to return, and
	// the callback may be waiting to write to the other connection.
	now := time.Now()
	_ = s.conn.SetDeadline(now)
	_ = s.upstream.conn.SetDeadline(now)
	s.conn.Close()
	s.upstream.conn.Close()
}

// scansLikeUpstream refuses a setting under which PostgreSQL would scan SQL
// differently from the rewriter (rewrite/lexsettings.go): whatever the
// statement decided, PostgreSQL would run another.
func scansLikeUpstream(name, value string) *Error {
	if rewrite.ScansLikeUpstream(name, value) {
		return nil
	}
	return fatalf(codeFeatureUnsupported, fmt.Sprintf("%s = %s is not supported through mandate: PostgreSQL would read SQL differently from the proxy", name, value), nil)
}
