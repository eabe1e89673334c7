package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Server accepts clients on its listeners and runs a session for each.
type Server struct {
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	upstream *pgconn.Config
	pool     *upstreamPool
	poolStop chan struct{} // closed by Shutdown once the sessions are gone
	poolDone chan struct{} // closed when the pool has closed its connections
	poolRun  sync.Once     // starts the pool's reaper with the first Serve
	poolEnd  sync.Once

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[uint32]*session // by the process id we handed out
	closing   bool
	wg        sync.WaitGroup // accept loops and sessions
	active    atomic.Int64
	nextID    atomic.Uint64
	ready     readiness // /readyz's last answer
}

// New checks cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	up, err := pgconn.ParseConfig(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream URL: %w", redactURLError(err))
	}
	up.ConnectTimeout = cfg.UpstreamConnectTimeout
	return &Server{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, upstream: up, sessions: map[uint32]*session{},
		pool: newUpstreamPool(cfg, cfg.Metrics), poolStop: make(chan struct{}), poolDone: make(chan struct{})}, nil
}

// redactURLError drops pgconn's echo of the connection string, which may
// hold the upstream password.
func redactURLError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s", pe.Unwrap().Error())
	}
	return err
}

// CheckUpstream connects once to the upstream and refuses a superuser role
// unless allowed: a superuser bypasses everything mandate enforces.
func (s *Server) CheckUpstream(ctx context.Context) error {
	conn, err := pgconn.ConnectConfig(ctx, s.upstream)
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	defer conn.Close(context.Background())
	if conn.ParameterStatus("is_superuser") == "on" && !s.cfg.AllowSuperuserUpstream {
		return fmt.Errorf("upstream role %q is a superuser, which bypasses every policy; use a non-superuser role or pass --allow-superuser-upstream", s.upstream.User)
	}
	return nil
}

// Listen opens the configured TCP and unix-socket listeners.
func (s *Server) Listen() error {
	for _, addr := range s.cfg.Listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	if dir := s.cfg.UnixSocketDir; dir != "" {
		path := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(s.cfg.UnixPort))
		// A stale socket file from a crashed run would make Listen fail; a
		// live one answers a dial, and then we must not steal it.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			s.closeListeners()
			return fmt.Errorf("%s is in use by another server", path)
		}
		_ = os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			s.closeListeners()
			return err
		}
		_ = os.Chmod(path, 0o777) // access is decided by authentication, as in PostgreSQL
		s.listeners = append(s.listeners, l)
	}
	return nil
}

// Addrs returns the listeners' addresses (useful with port 0).
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

// Serve accepts clients until Shutdown. It returns once every accept loop
// has stopped; sessions may still be draining (Shutdown waits for them).
func (s *Server) Serve() error {
	if s.cfg.Transparent {
		s.log.Warn("TRANSPARENT MODE: no policy is enforced; every client sees everything the upstream role can see")
	}
	for _, a := range s.Addrs() {
		s.log.Info("listening", "addr", a.String(), "auth", string(s.cfg.Auth), "tls", s.cfg.TLS != nil)
	}
	s.poolRun.Do(func() {
		go func() {
			defer close(s.poolDone)
			s.pool.run(s.poolStop)
		}()
	})
	var acceptWG sync.WaitGroup
	for _, l := range s.listeners {
		acceptWG.Add(1)
		go func(l net.Listener) {
			defer acceptWG.Done()
			s.acceptLoop(l)
		}(l)
	}
	acceptWG.Wait()
	return nil
}

func (s *Server) acceptLoop(l net.Listener) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Error("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.metrics.connsTotal.Inc()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.newSession(c).run()
		}()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.Close()
	}
}

// Shutdown stops accepting, lets each session finish its statement in
// flight (idle sessions are told 57P01 at once, busy ones when their
// statement and transaction end), and after ctx's deadline closes whatever
// is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	s.closeListeners()
	for _, ss := range sessions {
		ss.beginShutdown()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.stopPool()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for _, ss := range s.sessions {
			ss.forceClose()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// stopPool closes the pooled upstream connections, once no session can
// release one any more.
func (s *Server) stopPool() {
	started := true
	s.poolRun.Do(func() { started = false })
	s.poolEnd.Do(func() { close(s.poolStop) })
	if started {
		<-s.poolDone
	}
}

// register gives a session its own BackendKeyData: clients cancel through
// mandate, which maps the key to the upstream's.
func (s *Server) register(ss *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return fatalf(codeAdminShutdown, "terminating connection due to administrator command", nil)
	}
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if pid == 0 || s.sessions[pid] != nil {
			continue
		}
		ss.pid, ss.secret = pid, append([]byte(nil), b[4:]...)
		s.sessions[pid] = ss
		return nil
	}
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.pid] == ss {
		delete(s.sessions, ss.pid)
	}
}

// lookupCancel finds the session a CancelRequest names; the secret is
// compared in constant time.
func (s *Server) lookupCancel(pid uint32, secret []byte) *session {
	s.mu.Lock()
	ss := s.sessions[pid]
	s.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.secret, secret) != 1 {
		return nil
	}
	return ss
}

// Ready reports whether the server accepts clients, its policy state is
// fresh enough to decide (an enforcing replica that would answer every
// statement with 57P03 is not ready) and it reaches its upstream.
func (s *Server) Ready(ctx context.Context) error {
	if s.isClosing() {
		return errors.New("shutting down")
	}
	if a := s.cfg.Audit; a != nil && a.Err() != nil {
		return fmt.Errorf("audit log: %w", a.Err())
	}
	if e := s.cfg.Enforcer; e != nil {
		if _, err := e.State.Check(e.now()); err != nil {
			return err
		}
		if cat, _ := e.Catalogs.Current(); cat == nil {
			return errors.New("upstream catalog not loaded")
		}
	}
	conn, err := pgconn.ConnectConfig(ctx, s.upstream)
	if err != nil {
		return fmt.Errorf("upstream unreachable: %w", err)
	}
	return conn.Close(ctx)
}
