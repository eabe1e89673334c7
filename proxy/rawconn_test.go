//go:build unix

package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
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
