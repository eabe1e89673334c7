package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mandate-proxy/mandate/policy"
)

// Channel is the LISTEN/NOTIFY channel every state change is announced on.
const Channel = "mandate_state"

// Config tunes a State. Zero durations take the documented defaults.
type Config struct {
	// ConnConfig reaches the database holding the mandate schema. State
	// opens its own dedicated connection from it (never a pooled one: it
	// sits in LISTEN).
	ConnConfig *pgx.ConnConfig

	// RefreshInterval is how often the state is re-checked even without a
	// notification, so a missed one is caught (default 5s). A re-check
	// reads one row; the tables are re-read only if something changed.
	RefreshInterval time.Duration
	// MaxStaleness is how long the state may go unconfirmed before Check
	// refuses to use it (default 30s). Must exceed RefreshInterval.
	MaxStaleness time.Duration
	// QueryTimeout bounds connecting and each read (default 5s).
	QueryTimeout time.Duration
	// RevokedRetention is how long a revoked delegation stays in snapshots
	// so that Snapshot.RevokedAt can answer for it (default 1h).
	RevokedRetention time.Duration
	// MinBackoff and MaxBackoff bound reconnection delays (default 100ms, 5s).
	MinBackoff, MaxBackoff time.Duration
	// DisableListen relies on periodic re-reads alone, for deployments where
	// LISTEN is unavailable (e.g. behind a transaction-pooling bouncer).
	DisableListen bool

	// Now is the clock for freshness and lag (default time.Now). Timers for
	// refresh and backoff run on real time.
	Now func() time.Time
	// OnNotify, if set, receives for each notification the time from the
	// change in the database to its receipt here (both clocks must agree).
	OnNotify func(lag time.Duration)
	// OnReload, if set, receives the duration of each full re-read.
	OnReload func(took time.Duration)
	// OnError, if set, receives each failure of the watch connection before
	// it is retried (for logs; Check reports the consequence).
	OnError func(error)
}

// State holds the current Snapshot of the live policy state for the proxy's
// hot path and keeps it fresh while Watch runs. Readers never block: a
// lookup is an atomic load plus map reads.
type State struct {
	cfg  Config
	conn *pgx.ConnConfig

	snap      atomic.Pointer[Snapshot]
	confirmed atomic.Int64 // Now() in unix nanoseconds when the state was last known current

	readMu sync.Mutex // orders reads and installs, so versions follow database order

	syncMu   sync.Mutex // one Sync at a time; see Sync
	syncConn *pgx.Conn  // Sync's own connection, opened on first use
	lastSync time.Time  // when the last successful Sync began
	// After a failed Sync: until syncRetry, Sync answers syncErr at once;
	// syncFailures in a row set the backoff.
	syncRetry    time.Time
	syncErr      error
	syncFailures int
	ready        chan struct{}
	onReady      sync.Once
	watching     atomic.Bool
}

// NewState returns a State with no snapshot yet: Check fails closed until the
// first successful read by Watch or Load.
func NewState(cfg Config) (*State, error) {
	if cfg.ConnConfig == nil {
		return nil, errors.New("store: state: ConnConfig is required")
	}
	setDefault(&cfg.RefreshInterval, 5*time.Second)
	setDefault(&cfg.MaxStaleness, 30*time.Second)
	setDefault(&cfg.QueryTimeout, 5*time.Second)
	setDefault(&cfg.RevokedRetention, time.Hour)
	setDefault(&cfg.MinBackoff, 100*time.Millisecond)
	setDefault(&cfg.MaxBackoff, 5*time.Second)
	if cfg.MaxStaleness <= cfg.RefreshInterval {
		return nil, fmt.Errorf("store: state: MaxStaleness (%s) must exceed RefreshInterval (%s)", cfg.MaxStaleness, cfg.RefreshInterval)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	conn := cfg.ConnConfig.Copy()
	if conn.RuntimeParams["application_name"] == "" {
		conn.RuntimeParams["application_name"] = "mandate-state"
	}
	return &State{cfg: cfg, conn: conn, ready: make(chan struct{})}, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Check returns the current snapshot if it was confirmed current within
// MaxStaleness of now. Otherwise it fails closed with an *Error of code
// 57P03 wrapping ErrStale: better to refuse statements than to honour a
// delegation that may have been revoked while the store was unreachable.
func (s *State) Check(now time.Time) (*Snapshot, error) {
	snap := s.snap.Load()
	if snap == nil {
		return nil, &Error{Code: CodeCannotConnectNow, Message: "policy store unreachable; no policy state loaded yet", Err: ErrStale}
	}
	if now.Sub(time.Unix(0, s.confirmed.Load())) > s.cfg.MaxStaleness {
		return nil, &Error{
			Code:    CodeCannotConnectNow,
			Message: fmt.Sprintf("policy store unreachable; cached state is older than %s", s.cfg.MaxStaleness),
			Err:     ErrStale,
		}
	}
	return snap, nil
}

// Snapshot is Check at the State's clock.
func (s *State) Snapshot() (*Snapshot, error) { return s.Check(s.cfg.Now()) }

// Version is the current snapshot's version, 0 before the first read.
func (s *State) Version() uint64 {
	if snap := s.snap.Load(); snap != nil {
		return snap.version
	}
	return 0
}

// ConfirmedAt is when the state was last known current (State clock).
func (s *State) ConfirmedAt() time.Time { return time.Unix(0, s.confirmed.Load()) }

// Ready is closed after the first successful read.
func (s *State) Ready() <-chan struct{} { return s.ready }

// Load reads the state once over a short-lived connection, for commands
// that need a snapshot but no watcher (and for start-up before Watch).
func (s *State) Load(ctx context.Context) error {
	conn, err := s.connect(ctx, nil)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	return s.read(ctx, conn, true)
}

// Watch keeps the state current until ctx ends, and returns ctx's error.
// It holds one connection that LISTENs on Channel and re-reads on each
// notification, re-checks every RefreshInterval, and reconnects with
// jittered exponential backoff whenever the connection fails.
func (s *State) Watch(ctx context.Context) error {
	if !s.watching.CompareAndSwap(false, true) {
		return errors.New("store: state: Watch is already running")
	}
	defer s.watching.Store(false)
	backoff := s.cfg.MinBackoff
	for {
		err := s.watchOnce(ctx, func() { backoff = s.cfg.MinBackoff })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.cfg.OnError != nil {
			s.cfg.OnError(err)
		}
		// Full jitter keeps replicas that lost the same server from
		// reconnecting in lockstep.
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// notice is a notification as received, stamped on arrival.
type notice struct {
	payload  string
	received time.Time
}

// payload is the JSON a notification carries (see migrations/0001_init.sql).
type payload struct {
	Kind       string    `json:"kind"`
	Op         string    `json:"op"`
	ID         string    `json:"id"`
	Subject    string    `json:"subject"`
	Generation int64     `json:"generation"`
	At         time.Time `json:"at"`
}

// watchOnce runs one connection's life: connect, LISTEN, full read, then
// wait for notifications or the refresh deadline. It returns on the first
// failure; connected is called once the first read succeeded.
func (s *State) watchOnce(ctx context.Context, connected func()) error {
	// pgconn calls this from whichever read on conn meets a notification,
	// always on this goroutine, so pending needs no lock.
	var pending []notice
	onNotify := func(_ *pgconn.PgConn, n *pgconn.Notification) {
		pending = append(pending, notice{n.Payload, s.cfg.Now()})
	}
	conn, err := s.connect(ctx, onNotify)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if !s.cfg.DisableListen {
		if err := s.exec(ctx, conn, "LISTEN "+Channel); err != nil {
			return err
		}
	}
	// A full read after LISTEN: anything committed before it is in the read,
	// anything after will be notified.
	if err := s.read(ctx, conn, true); err != nil {
		return err
	}
	connected()

	next := time.Now().Add(s.cfg.RefreshInterval)
	for {
		want := s.drain(pending)
		pending = pending[:0]
		switch {
		case want != s.generation():
			if err := s.read(ctx, conn, true); err != nil {
				return err
			}
			next = time.Now().Add(s.cfg.RefreshInterval)
		case !time.Now().Before(next):
			if err := s.read(ctx, conn, false); err != nil {
				return err
			}
			next = time.Now().Add(s.cfg.RefreshInterval)
		}
		if len(pending) > 0 {
			continue // arrived during the read
		}
		waitCtx, cancel := context.WithDeadline(ctx, next)
		err := conn.PgConn().WaitForNotification(waitCtx)
		cancel()
		if err != nil && (ctx.Err() != nil || !errors.Is(waitCtx.Err(), context.DeadlineExceeded) || conn.IsClosed()) {
			return fmt.Errorf("store: state: wait for notification: %w", err)
		}
	}
}

// drain reports the lag of each pending notification and returns the
// generation the state must reach: the newest announced, or the current one
// if nothing newer was announced. An unreadable payload forces a re-read.
func (s *State) drain(pending []notice) int64 {
	want := s.generation()
	for _, n := range pending {
		var p payload
		if err := json.Unmarshal([]byte(n.payload), &p); err != nil || p.Generation == 0 {
			want = math.MinInt64 // differs from any generation: re-read
			continue
		}
		if s.cfg.OnNotify != nil && !p.At.IsZero() {
			s.cfg.OnNotify(n.received.Sub(p.At))
		}
		if want != math.MinInt64 && p.Generation > want {
			want = p.Generation
		}
	}
	return want
}

func (s *State) generation() int64 {
	if snap := s.snap.Load(); snap != nil {
		return snap.generation
	}
	return 0
}

func (s *State) connect(ctx context.Context, onNotify pgconn.NotificationHandler) (*pgx.Conn, error) {
	cfg := s.conn.Copy()
	cfg.OnNotification = onNotify
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: state: connect: %w", err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx) //nolint:errcheck // the connection is being abandoned anyway
}

func (s *State) exec(ctx context.Context, conn *pgx.Conn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("store: state: %s: %w", sql, err)
	}
	return nil
}

// read confirms the state current. Unless full, it first reads the
// generation alone and re-reads the tables only if it moved. A full read
// after (re)connecting always installs a new version, since a restored
// database can repeat a generation with other content.
func (s *State) read(ctx context.Context, conn *pgx.Conn, full bool) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	start, began := s.cfg.Now(), time.Now()
	if !full {
		var gen int64
		if err := conn.QueryRow(ctx, "SELECT generation FROM mandate.state").Scan(&gen); err != nil {
			return fmt.Errorf("store: state: probe: %w", err)
		}
		if gen == s.generation() {
			s.confirm(start)
			return nil
		}
	}
	snap, err := s.readSnapshot(ctx, conn, start)
	if err != nil {
		return fmt.Errorf("store: state: read: %w", err)
	}
	s.install(snap)
	s.confirm(start)
	if s.cfg.OnReload != nil {
		s.cfg.OnReload(time.Since(began))
	}
	s.onReady.Do(func() { close(s.ready) })
	return nil
}

// readSnapshot reads all tables in one REPEATABLE READ transaction, so the
// generation matches exactly the rows read. BEGIN and COMMIT travel in the
// batch: one round trip in all. A failure leaves the connection in an
// aborted transaction; callers drop it.
func (s *State) readSnapshot(ctx context.Context, conn *pgx.Conn, start time.Time) (*Snapshot, error) {
	b := &pgx.Batch{}
	var (
		gen      int64
		ds       []policy.Delegation
		consents [][2]string
		as       []policy.Agent
	)
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	b.Queue("SELECT generation FROM mandate.state").QueryRow(func(r pgx.Row) error { return r.Scan(&gen) })
	b.Queue(`
		SELECT `+delegationColumns+` FROM mandate.delegations
		WHERE (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
		   OR revoked_at > now() - $1::interval`, s.cfg.RevokedRetention,
	).Query(func(rows pgx.Rows) (err error) {
		ds, err = pgx.CollectRows(rows, scanDelegation)
		return err
	})
	b.Queue("SELECT subject, purpose FROM mandate.consents WHERE granted").Query(func(rows pgx.Rows) (err error) {
		consents, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (c [2]string, err error) {
			err = r.Scan(&c[0], &c[1])
			return c, err
		})
		return err
	})
	b.Queue(`SELECT ` + agentColumns + ` FROM mandate.agents WHERE disabled_at IS NULL`).Query(func(rows pgx.Rows) (err error) {
		as, err = pgx.CollectRows(rows, scanAgent)
		return err
	})
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return newSnapshot(gen, start, ds, consents, as), nil
}

func (s *State) install(snap *Snapshot) {
	if cur := s.snap.Load(); cur != nil {
		snap.version = cur.version + 1
	} else {
		snap.version = 1
	}
	s.snap.Store(snap)
}

// confirm records that the state was current at t (when the confirming read
// began, so the bound errs on the safe side); it never moves backwards.
func (s *State) confirm(t time.Time) {
	n := t.UnixNano()
	for {
		old := s.confirmed.Load()
		if n <= old || s.confirmed.CompareAndSwap(old, n) {
			return
		}
	}
}
