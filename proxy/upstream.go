package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// upstreamConn is a session's connection to PostgreSQL once pgconn has done
// the startup and authentication (SCRAM, MD5, password, trust; TLS as the
// URL asks) and handed the socket over.
type upstreamConn struct {
	conn     net.Conn
	r        *bufio.Reader
	src      io.Reader // what r reads: pgconn's background reader, stopped after the hijack
	wbuf     []byte
	params   map[string]string
	txStatus byte
	pid      uint32
	secret   []byte
	network  string // where cancel requests go
	address  string

	stmts     stmtCache   // statements mandate prepared on it (stmtcache.go)
	stale     atomic.Bool // a cached statement's plan no longer fits: drop them all (dropStaleStatements)
	key       string      // poolKey: what the backend was started with
	born      time.Time   // connected
	idleSince time.Time   // last released to the pool
}

// Buffer sizes per session: a message larger than the read buffer is
// streamed through, so these bound memory per idle connection (the issue's
// target is 64 KiB) rather than what can be relayed. pgbouncer uses 4 KiB.
const (
	upstreamReadBuffer  = 12 << 10 // a session's relay buffer (relayUpstream)
	upstreamResetBuffer = 4 << 10  // the connection's own reader: resets, TLS
	clientWriteBuffer   = 8 << 10
)

// acquireUpstream returns an idle pooled connection started with the same
// database and parameters, or connects a new one.
func (srv *Server) acquireUpstream(ctx context.Context, database string, params map[string]string) (*upstreamConn, error) {
	if database == "" {
		database = srv.upstream.Database
	}
	key := poolKey(database, params)
	if u := srv.pool.get(key); u != nil {
		srv.metrics.upstreamReused.Inc()
		return u, nil
	}
	u, err := srv.connectUpstream(ctx, database, params)
	if err != nil {
		return nil, err
	}
	u.key, u.born = key, time.Now()
	return u, nil
}

func (srv *Server) connectUpstream(ctx context.Context, database string, params map[string]string) (*upstreamConn, error) {
	cfg := srv.upstream.Copy()
	if database != "" {
		cfg.Database = database
	}
	cfg.RuntimeParams = make(map[string]string, len(srv.upstream.RuntimeParams)+len(params))
	for k, v := range srv.upstream.RuntimeParams {
		cfg.RuntimeParams[k] = v
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	// pgconn reads through a background reader that may still be inside a
	// Read when the connection is hijacked; reading the raw socket would
	// race it for our first response. Keep reading through that reader: it
	// hands out what it has, then reads the socket directly once stopped.
	var pgReader io.Reader
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newRawConn(c), nil
	}
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		pgReader = r
		return pgproto3.NewFrontend(r, w)
	}
	start := time.Now()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	srv.metrics.upstreamConnect.Observe(time.Since(start).Seconds())
	if err != nil {
		srv.metrics.upstreamFailures.Inc()
		var pg *pgconn.PgError
		if errors.As(err, &pg) {
			return nil, pg // e.g. database "x" does not exist: the client's to see
		}
		srv.log.Error("upstream connect failed", "err", err)
		return nil, fatalf(codeConnectionFailure, "could not connect to the upstream database server", err)
	}
	if pc.ParameterStatus("is_superuser") == "on" && !srv.cfg.AllowSuperuserUpstream {
		pc.Close(ctx)
		srv.log.Error("upstream role is a superuser; refusing to relay (use a non-superuser role or --allow-superuser-upstream)")
		return nil, fatalf(codeInsufficientPriv, "mandate refuses to relay through a superuser upstream role", nil)
	}
	hj, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, fatalf(codeConnectionFailure, "could not take over the upstream connection", err)
	}
	if hj.Frontend.ReadBufferLen() > 0 {
		// Nothing may arrive between ReadyForQuery and our first message;
		// if it did, we cannot relay it in order.
		hj.Conn.Close()
		return nil, fatalf(codeConnectionFailure, "upstream sent data before the first statement", nil)
	}
	raddr := hj.Conn.RemoteAddr()
	return &upstreamConn{
		conn:     hj.Conn,
		r:        bufio.NewReaderSize(pgReader, upstreamResetBuffer),
		src:      pgReader,
		wbuf:     make([]byte, 0, 8<<10),
		params:   hj.ParameterStatuses,
		txStatus: hj.TxStatus,
		pid:      hj.PID,
		secret:   hj.SecretKey,
		network:  raddr.Network(),
		address:  raddr.String(),
	}, nil
}

// cancel sends a CancelRequest for this connection's upstream backend.
func (u *upstreamConn) cancel(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, u.network, u.address)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	buf, err := (&pgproto3.CancelRequest{ProcessID: u.pid, SecretKey: u.secret}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(buf); err != nil {
		return err
	}
	// The server closes the connection once it has acted on the request.
	_, _ = io.Copy(io.Discard, c)
	return nil
}

// close says goodbye to the upstream and closes the socket.
func (u *upstreamConn) close() {
	_ = u.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = u.conn.Write([]byte{'X', 0, 0, 0, 4})
	u.conn.Close()
}

// socketOnly reports whether everything this connection has received is
// still in its socket: nothing in r, and pgconn's background reader (which
// holds what it read before the hijack) stopped, as pgconn itself checks
// before reading around it. Then the socket may be read directly.
func (u *upstreamConn) socketOnly() bool {
	bg, ok := u.src.(interface{ Status() int32 })
	return u.r.Buffered() == 0 && ok && bg.Status() == 0 // bgreader.StatusStopped
}
