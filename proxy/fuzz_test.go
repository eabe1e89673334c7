package proxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fuzzConn is a client connection whose bytes come from the fuzzer and
// whose replies are dropped.
type fuzzConn struct{ r io.Reader }

func (c *fuzzConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *fuzzConn) Close() error                { return nil }
func (c *fuzzConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6432} }
func (c *fuzzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

var fuzzMetrics = NewMetrics()

func encodeAll(msgs ...pgproto3.FrontendMessage) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}

// FuzzClientMessages feeds arbitrary bytes through the client side of a
// session, the same code a real client reaches: startup negotiation, the
// startup parameter checks, then the decoding relay loop. Nothing may panic
// or hang, whatever the input.
func FuzzClientMessages(f *testing.F) {
	startup, _ := (&pgproto3StartupForTest{user: "alice", db: "app"}).encode()
	ssl := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), codeSSLRequest)
	f.Add(startup)
	f.Add(append(append([]byte{}, ssl...), startup...))
	f.Add(append(append([]byte{}, startup...), encodeAll(&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Terminate{})...))
	f.Add(append(append([]byte{}, startup...), encodeAll(
		&pgproto3.Parse{Name: "s", Query: "SELECT $1", ParameterOIDs: []uint32{23}},
		&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Sync{},
		&pgproto3.CopyData{Data: []byte("1\tx\n")}, &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "no"},
		&pgproto3.FunctionCall{Function: 1}, &pgproto3.Flush{}, &pgproto3.Close{ObjectType: 'S', Name: "s"})...))
	f.Add(encodeAll(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	srv := &Server{
		cfg:      Config{MaxMessageSize: 1 << 16, Auth: AuthTrust}.withDefaults(),
		metrics:  fuzzMetrics,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		sessions: map[uint32]*session{},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &fuzzConn{r: bytes.NewReader(data)}
		s := srv.newSession(c)
		res, err := s.negotiate()
		if err != nil || res.startup == nil {
			return
		}
		if _, _, err := upstreamParams(res.startup); err != nil {
			return
		}
		s.backend = pgproto3.NewBackend(s.conn, io.Discard)
		s.backend.SetMaxBodyLen(srv.cfg.MaxMessageSize)
		s.upstream = &upstreamConn{conn: &fuzzConn{r: bytes.NewReader(nil)}}
		_ = s.relayClient()
	})
}
