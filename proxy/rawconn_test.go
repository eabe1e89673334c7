//go:build unix

package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the first wrapped.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	r := newRawConn(c)
	if _, ok := r.(*rawConn); !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", r)
	}
	t.Cleanup(func() { r.Close(); peer.Close() })
	return r, peer
}

func TestRawConnMovesLargePayloadsBothWays(t *testing.T) {
	r, peer := tcpPair(t)
	// Far more than the socket buffers hold, so writes must wait for room
	// and reads must wait for data.
	payload := make([]byte, 8<<20)
	rand.Read(payload)

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	if n, err := r.Write(payload); err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(payload))
	}
	r.(*rawConn).Conn.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("peer received %d bytes, not the %d written", len(b), len(payload))
	}

	go func() {
		peer.Write(payload)
		peer.Close()
	}()
	b, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("ReadAll = %d bytes, %v; want the %d written and EOF", len(b), err, len(payload))
	}
}

func TestRawConnHonoursDeadlinesAndClose(t *testing.T) {
	r, _ := tcpPair(t)
	buf := make([]byte, 16)

	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v; want a timeout", err)
	}

	r.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read interrupted by Close = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v; want net.ErrClosed", err)
	}
}

func TestRawConnReportsPeerReset(t *testing.T) {
	r, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	buf := make([]byte, 16)
	_, err := r.Read(buf)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the peer's reset = %v; want ECONNRESET", err)
	}
}

// collectSink gathers what a pump reads, in small spaces so that a message
// takes several reads.
type collectSink struct {
	buf       [7]byte
	got       []byte
	isSettled bool
}

func (c *collectSink) space() []byte      { return c.buf[:] }
func (c *collectSink) filled(n int) error { c.got = append(c.got, c.buf[:n]...); return nil }
func (c *collectSink) idle() error        { return nil }
func (c *collectSink) settled() bool      { return c.isSettled }

// inqExpected: where rawconn_inq.go is built, TCP sockets must have TCP_INQ.
var inqExpected = runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64")

// TestPumpSeesTheEndBehindData: a peer that writes and closes its side at
// once must be seen to end, though its FIN comes with the data and brings
// no edge of its own. On Linux the pump learns it from TCP_INQ; without it
// (forced here too) it reads until EAGAIN.
func TestPumpSeesTheEndBehindData(t *testing.T) {
	for _, inq := range []bool{true, false} {
		t.Run(fmt.Sprintf("inq=%v", inq), func(t *testing.T) {
			c, peer := tcpPair(t)
			r := c.(*rawConn)
			if inqExpected && r.inq == nil {
				t.Fatal("TCP_INQ is not enabled on a TCP connection")
			}
			if !inq {
				r.inq = nil
			}
			msg := []byte("a query and then the end of the stream")
			if _, err := peer.Write(msg); err != nil {
				t.Fatal(err)
			}
			peer.(*net.TCPConn).CloseWrite()
			time.Sleep(10 * time.Millisecond) // data and FIN both queued before the pump starts
			r.SetReadDeadline(time.Now().Add(5 * time.Second))
			sink := &collectSink{isSettled: true} // so that only TCP_INQ can tell
			if err := r.pump(sink); err != io.EOF {
				t.Fatalf("pump = %v after %q; want io.EOF", err, sink.got)
			}
			if !bytes.Equal(sink.got, msg) {
				t.Fatalf("pump read %q; want %q", sink.got, msg)
			}
		})
	}
}

// TestPumpSeesAResetBehindData: TCP_INQ does not count a reset that came
// with the data, so a sink that is not settled (the peer owes more before
// mandate writes to it) makes the pump read on until the reset shows.
func TestPumpSeesAResetBehindData(t *testing.T) {
	c, peer := tcpPair(t)
	r := c.(*rawConn)
	msg := []byte("copy data, then the client dies")
	if _, err := peer.Write(msg); err != nil {
		t.Fatal(err)
	}
	peer.(*net.TCPConn).SetLinger(0) // close with RST
	peer.Close()
	time.Sleep(10 * time.Millisecond) // data and RST both arrived before the pump starts
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	sink := &collectSink{}
	if err := r.pump(sink); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("pump = %v after %q; want ECONNRESET", err, sink.got)
	}
	if !bytes.Equal(sink.got, msg) {
		t.Fatalf("pump read %q; want %q", sink.got, msg)
	}
}
