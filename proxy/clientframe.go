package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The client loop on a raw socket reads through rawConn.pump, like the
// upstream loop, instead of pgproto3.Backend.Receive: a Receive that finds
// its buffer empty makes a read that returns EAGAIN before it waits, one
// system call per statement. The pump frames and decodes messages itself
// (decodeFrontend, checked against Receive by FuzzClientFraming), and its
// buffer is held only while a message is incomplete, so an idle session
// holds none.

// clientReadBuffer is the size of the pooled buffers client messages are
// read into; a larger message gets a buffer of its own size. A session
// holds one only while a message is incomplete, so its size costs idle
// sessions nothing; 8 KiB made psql's \copy of 1M rows 8% slower than
// 32 KiB (more reads of a streaming client).
const clientReadBuffer = 32 << 10

var clientBuffers = sync.Pool{New: func() any { b := make([]byte, clientReadBuffer); return &b }}

// frontendMessages are the messages decodeFrontend decodes into, reused
// from one message to the next as pgproto3.Backend does.
type frontendMessages struct {
	bind         pgproto3.Bind
	close        pgproto3.Close
	describe     pgproto3.Describe
	execute      pgproto3.Execute
	functionCall pgproto3.FunctionCall
	copyFail     pgproto3.CopyFail
	copyData     pgproto3.CopyData
	copyDone     pgproto3.CopyDone
	flush        pgproto3.Flush
	parse        pgproto3.Parse
	password     pgproto3.PasswordMessage
	query        pgproto3.Query
	sync         pgproto3.Sync
	terminate    pgproto3.Terminate
}

// of returns the message for a type byte, nil for an unknown type. 'p' is
// a PasswordMessage, as Receive takes it once authentication is over.
func (m *frontendMessages) of(typ byte) pgproto3.FrontendMessage {
	switch typ {
	case 'B':
		return &m.bind
	case 'C':
		return &m.close
	case 'D':
		return &m.describe
	case 'E':
		return &m.execute
	case 'F':
		return &m.functionCall
	case 'f':
		return &m.copyFail
	case 'd':
		return &m.copyData
	case 'c':
		return &m.copyDone
	case 'H':
		return &m.flush
	case 'P':
		return &m.parse
	case 'p':
		return &m.password
	case 'Q':
		return &m.query
	case 'S':
		return &m.sync
	case 'X':
		return &m.terminate
	}
	return nil
}

// decodeFrontend decodes the message at the start of b, with Receive's
// checks in Receive's order. When b holds only part of it, msg is nil and
// need is the size of the whole message (5 while its header is partial).
// The message refers to b, like Receive's to its buffer.
func decodeFrontend(b []byte, maxBody int, m *frontendMessages) (msg pgproto3.FrontendMessage, need int, err error) {
	if need, err = frameFrontend(b, maxBody, m); err != nil || len(b) < need {
		return nil, need, err
	}
	msg = m.of(b[0])
	if err := msg.Decode(b[5:need]); err != nil {
		// Not wrapped: a body's io.EOF is no end of the client's stream.
		return nil, 0, fmt.Errorf("invalid %c message: %v", b[0], err)
	}
	return msg, need, nil
}

// frameFrontend is decodeFrontend's check of the header at the start of b:
// need is the size of the whole message (5 while its header is partial).
func frameFrontend(b []byte, maxBody int, m *frontendMessages) (need int, err error) {
	if len(b) < 5 {
		return 5, nil
	}
	length := msgLength(b)
	if length < 4 {
		return 0, fmt.Errorf("invalid message length: %d", length)
	}
	body := length - 4
	if maxBody > 0 && body > maxBody {
		return 0, &pgproto3.ExceededMaxBodyLenErr{MaxExpectedBodyLen: maxBody, ActualBodyLen: body}
	}
	if m.of(b[0]) == nil {
		return 0, fmt.Errorf("unknown message type: %c", b[0])
	}
	return 5 + body, nil
}

// clientFramer is the client loop's pump sink: it decodes the messages
// that arrive and hands each to the session.
type clientFramer struct {
	s    *session
	buf  *[]byte // nil while nothing is pending
	have int     // bytes read into buf and not yet handled
	need int     // the size of the partial message at the start of buf
	msgs frontendMessages
	last byte // the type of the last whole message handled
	// stop is why the session stopped the pump: an error of a handler, or
	// errTerminate. Errors the pump returns otherwise are read errors.
	stop error
}

// errStopped is what the framer returns to end the pump with f.stop.
var errStopped = errors.New("client loop stopped")

func (f *clientFramer) space() []byte {
	if f.buf == nil {
		f.buf = clientBuffers.Get().(*[]byte)
	}
	if len(*f.buf) < f.need {
		// A message larger than the buffer: a buffer of its own size,
		// which the limit on message size bounds.
		b := make([]byte, f.need)
		copy(b, (*f.buf)[:f.have])
		f.putBuffer()
		f.buf = &b
	}
	return (*f.buf)[f.have:]
}

func (f *clientFramer) filled(n int) error {
	f.have += n
	b := (*f.buf)[:f.have]
	off := 0
	// A session that enforces nothing passes messages on undecoded.
	raw := f.s.srv.cfg.Enforcer == nil
	for {
		var msg pgproto3.FrontendMessage
		var need int
		var err error
		if raw {
			need, err = frameFrontend(b[off:], f.s.srv.cfg.MaxMessageSize, &f.msgs)
		} else {
			msg, need, err = decodeFrontend(b[off:], f.s.srv.cfg.MaxMessageSize, &f.msgs)
		}
		if err != nil {
			return err
		}
		if len(b)-off < need {
			f.need = need
			break
		}
		typ := b[off]
		f.last = typ
		off += need
		if raw {
			err = f.s.relayRaw(typ, b[off-need:off])
		} else {
			err = f.s.fromClient(msg)
		}
		if err != nil {
			f.stop = err
			return errStopped
		}
	}
	f.have = copy(*f.buf, b[off:])
	if f.have == 0 {
		f.putBuffer()
	}
	return nil
}

// settled: the last message asks PostgreSQL to answer now (a Query, Sync,
// Flush, the end of a COPY, a function call) and none is partly read, so
// the next move is mandate's: relaying that answer. After COPY data or an
// unsynced Parse, the client owes more first.
func (f *clientFramer) settled() bool {
	switch f.last {
	case 'Q', 'S', 'H', 'c', 'f', 'F':
		return f.have == 0
	}
	return false
}

func (f *clientFramer) idle() error {
	if f.have == 0 {
		f.putBuffer() // a session waiting for its client holds no buffer
	}
	if err := f.s.armIdle(); err != nil {
		f.stop = err
		return errStopped
	}
	return nil
}

// putBuffer gives the buffer back; one grown for a large message is left
// to the garbage collector.
func (f *clientFramer) putBuffer() {
	if f.buf != nil && len(*f.buf) == clientReadBuffer {
		clientBuffers.Put(f.buf)
	}
	f.buf = nil
}

// pumpClient is relayClient on a raw socket.
func (s *session) pumpClient(pump pumpFunc) error {
	f := &clientFramer{s: s}
	defer f.putBuffer()
	for {
		err := pump(f)
		if errors.Is(err, errStopped) {
			return f.stop
		}
		if errors.Is(err, io.EOF) && f.have > 0 {
			err = io.ErrUnexpectedEOF // as Receive says of a partial message
		}
		if retry, err := s.clientReadError(err); !retry {
			return err
		}
	}
}

// msgLength is the length field of the message header hdr starts with (type
// byte, then a signed 32-bit length that counts itself).
func msgLength(hdr []byte) int { return int(int32(binary.BigEndian.Uint32(hdr[1:5]))) }

// exactReader reads one message part at a time: the header, then the
// body, never a byte past the message. The Backend reads the client
// through it until authentication ends; then pumpClient reads the socket,
// so no byte may be left in the Backend's buffer.
type exactReader struct {
	r    io.Reader
	hdr  [5]byte
	hn   int // header bytes read
	body int // body bytes still to read
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.body > 0 {
		n, err := e.r.Read(p[:min(len(p), e.body)])
		e.body -= n
		return n, err
	}
	n, err := e.r.Read(p[:min(len(p), 5-e.hn)])
	e.hn += copy(e.hdr[e.hn:], p[:n])
	if e.hn == 5 {
		e.hn = 0
		// Receive refuses a length under 4 before it reads a body.
		e.body = max(msgLength(e.hdr[:])-4, 0)
	}
	return n, err
}
