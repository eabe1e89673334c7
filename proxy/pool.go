package proxy

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// upstreamPool keeps the upstream connections of sessions that ended
// cleanly, for the next session that asks for the same database with the
// same startup parameters: pgbouncer's session pooling.
//
// Why: a new PostgreSQL backend is a fork and an authentication (a few
// milliseconds), and it starts cold. On the VMs we measure on, a cold
// backend's first touch of each shared-buffer page is a page fault, and
// those faults made PostgreSQL spend twice the CPU per pgbench transaction
// until the backend had touched the table. pgbouncer's pool hands out warm
// backends; so does this one.
//
// What makes reuse safe: a connection is pooled only when its session ended
// at a message boundary with nothing in flight, outside any transaction and
// with no extended-protocol messages awaiting a Sync, and after DISCARD ALL
// has answered with an idle ReadyForQuery. DISCARD ALL closes cursors and
// prepared statements, resets every setting to its startup value (the role
// and session authorization too), drops temporary tables, stops listening,
// releases advisory locks and forgets cached plans and sequence state; it
// keeps random()'s seed, which reset draws afresh (setseed). The
// upstream role is mandate's own for every session, so no session can reach
// anything through a reused backend that it could not through a new one.
// mandate's own session state (search_path tracking, prepared statements,
// assumed identities) belongs to the client session and starts afresh.
type upstreamPool struct {
	max         int           // idle connections kept in all
	idleTimeout time.Duration // an idle connection older than this is closed
	lifetime    time.Duration // a connection older than this is not reused
	metrics     *Metrics

	mu     sync.Mutex
	idle   map[string][]*upstreamConn // by poolKey; the most recently released last
	count  int
	closed bool
}

func newUpstreamPool(cfg Config, m *Metrics) *upstreamPool {
	return &upstreamPool{max: cfg.UpstreamPoolSize, idleTimeout: cfg.UpstreamIdleTimeout,
		lifetime: cfg.UpstreamLifetime, metrics: m, idle: map[string][]*upstreamConn{}}
}

// poolKey names what a backend was started with: connections are shared
// only between sessions that would have started the very same backend.
// Startup strings cannot hold a NUL, so NUL-separated fields are
// unambiguous.
func poolKey(database string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(database)
	for _, k := range keys {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(params[k])
	}
	return b.String()
}

// get returns a live idle connection for key, or nil.
func (p *upstreamPool) get(key string) *upstreamConn {
	if p.max <= 0 {
		return nil
	}
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		u := list[len(list)-1]
		p.idle[key] = list[:len(list)-1]
		if len(list) == 1 {
			delete(p.idle, key)
		}
		p.count--
		p.metrics.poolIdle.Set(float64(p.count))
		p.mu.Unlock()
		if !p.expired(u, time.Now()) && u.alive() {
			return u
		}
		p.metrics.poolDiscarded.Inc()
		u.close()
	}
}

func (p *upstreamPool) expired(u *upstreamConn, now time.Time) bool {
	return p.idleTimeout > 0 && now.Sub(u.idleSince) > p.idleTimeout ||
		p.lifetime > 0 && now.Sub(u.born) > p.lifetime
}

// put keeps u for reuse, or reports that the pool is full, closed or u too
// old; then the caller closes it.
func (p *upstreamPool) put(u *upstreamConn) bool {
	now := time.Now()
	if p.max <= 0 || p.lifetime > 0 && now.Sub(u.born) > p.lifetime {
		return false
	}
	u.idleSince = now
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.count >= p.max {
		return false
	}
	p.idle[u.key] = append(p.idle[u.key], u)
	p.count++
	p.metrics.poolIdle.Set(float64(p.count))
	return true
}

func (p *upstreamPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// reap closes idle connections that have expired.
func (p *upstreamPool) reap() {
	now := time.Now()
	var gone []*upstreamConn
	p.mu.Lock()
	for key, list := range p.idle {
		kept := list[:0]
		for _, u := range list {
			if p.expired(u, now) {
				gone = append(gone, u)
			} else {
				kept = append(kept, u)
			}
		}
		if len(kept) == 0 {
			delete(p.idle, key)
		} else {
			p.idle[key] = kept
		}
	}
	p.count -= len(gone)
	p.metrics.poolIdle.Set(float64(p.count))
	p.mu.Unlock()
	for _, u := range gone {
		p.metrics.poolDiscarded.Inc()
		u.close()
	}
}

// run reaps until stop is closed, then closes the pool and every idle
// connection in it.
func (p *upstreamPool) run(stop <-chan struct{}) {
	if p.max <= 0 {
		<-stop
		return
	}
	every := time.Minute
	if p.idleTimeout > 0 {
		every = min(every, max(p.idleTimeout/2, 10*time.Millisecond))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.reap()
		case <-stop:
			p.mu.Lock()
			p.closed = true
			idle := p.idle
			p.idle, p.count = map[string][]*upstreamConn{}, 0
			p.metrics.poolIdle.Set(0)
			p.mu.Unlock()
			for _, list := range idle {
				for _, u := range list {
					u.close()
				}
			}
			return
		}
	}
}

// resetTimeout bounds DISCARD ALL on a released connection.
const resetTimeout = 5 * time.Second

// reset runs DISCARD ALL and reseeds random() (a setseed would otherwise
// make the next session's random() predictable), and reads the answers,
// keeping the ParameterStatus values they report (the settings DISCARD ALL
// put back). Anything but clean, idle answers is an error: the connection
// is then closed, never reused. The two go as two Queries: DISCARD ALL
// cannot run in the implicit transaction of one.
func (u *upstreamConn) reset() error {
	u.stmts.forget("") // DISCARD ALL deallocates them
	_ = u.conn.SetDeadline(time.Now().Add(resetTimeout))
	defer func() { _ = u.conn.SetDeadline(time.Time{}) }()
	msg, err := (&pgproto3.Query{String: "DISCARD ALL"}).Encode(u.wbuf[:0])
	if err != nil {
		return err
	}
	if msg, err = (&pgproto3.Query{String: "SELECT pg_catalog.setseed(" + freshSeed() + ")"}).Encode(msg); err != nil {
		return err
	}
	if _, err := u.conn.Write(msg); err != nil {
		return err
	}
	for ready := 0; ready < 2; {
		typ, body, err := readMessage(u.r)
		if err != nil {
			return err
		}
		switch typ {
		case 'C', 'N', 'A', 'T', 'D': // done; a notice; a notification for nobody; setseed's row
		case 'S':
			u.setParam(body)
		case 'Z':
			if len(body) != 1 || body[0] != 'I' {
				return fmt.Errorf("resetting left the upstream in transaction state %q", body)
			}
			ready++
		case 'E':
			_, code := errorFields(body)
			return fmt.Errorf("resetting failed with SQLSTATE %s", code)
		default:
			return fmt.Errorf("unexpected message %q in answer to DISCARD ALL", typ)
		}
	}
	u.wbuf = u.wbuf[:0]
	return nil
}

// freshSeed is a random seed for setseed, in [-1, 1], as SQL.
func freshSeed() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%.17g", float64(binary.LittleEndian.Uint64(b[:])>>11)/(1<<52)-1)
}

// maxResetMessage bounds one message read while resetting.
const maxResetMessage = 1 << 20

// readMessage reads one whole backend message.
func readMessage(r *bufio.Reader) (typ byte, body []byte, err error) {
	hdr, err := r.Peek(5)
	if err != nil {
		return 0, nil, err
	}
	typ = hdr[0]
	n := msgLength(hdr)
	if n < 4 || n > maxResetMessage {
		return 0, nil, fmt.Errorf("upstream message %q has length %d", typ, n)
	}
	msg := make([]byte, 1+n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return 0, nil, err
	}
	return typ, msg[5:], nil
}

// setParam records a ParameterStatus body (name NUL value NUL) and returns
// its name and value.
func (u *upstreamConn) setParam(body []byte) (name, value string) {
	name, value, ok := strings.Cut(string(body), "\x00")
	if !ok {
		return "", ""
	}
	value = strings.TrimSuffix(value, "\x00")
	u.params[name] = value
	return name, value
}

// alive reports whether an idle connection is still open and silent: an
// upstream that shut down or ended the backend has sent an error and closed
// the socket, which a non-blocking peek sees at once.
func (u *upstreamConn) alive() bool {
	if u.r.Buffered() > 0 {
		return false
	}
	c := u.conn
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn() // TLS: any record arriving now is unexpected too
	}
	return socketSilent(c)
}
