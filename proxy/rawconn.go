//go:build unix

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a socket with raw, non-blocking system calls
// and waits through Go's netpoller only when the socket has nothing to
// read or no room to write.
//
// Why: an ordinary Read or Write enters the system call through the
// runtime's entersyscall, which wakes the sysmon thread whenever it is
// parked, and sysmon parks each time the whole process goes idle: between
// two statements of every client at low concurrency. That wake-up is a
// context switch per message, which on the 2-core VMs we measure on cost
// about 0.05 ms per round trip (golang/go#18236 has the background). A
// read or write on a non-blocking socket cannot block, so RawSyscall,
// which skips entersyscall, is safe for it.
//
// Deadlines, Close and every other net.Conn method behave as before: they
// are the wrapped connection's own, and the netpoller still does the
// waiting.
type rawConn struct {
	net.Conn
	rc syscall.RawConn

	rmu     sync.Mutex // serialises Read; guards the read scratch below
	rbuf    []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wmu     sync.Mutex // serialises Write; guards the write scratch below
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool

	// inq, when the socket reports what is left to read after each read
	// (TCP_INQ, rawconn_inq.go), is the pump's scratch for recvmsg.
	inq *inqMsg
}

// newRawConn wraps TCP and unix socket connections; anything else (a
// connection without a file descriptor) is returned as it is.
func newRawConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{Conn: c, rc: rc}
	r.readFn, r.writeFn = r.read, r.write // made once: no allocation per call
	if enableInq(c, rc) {
		r.inq = new(inqMsg)
	}
	return r
}

func (r *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.rbuf, r.rn, r.rerr = p, 0, nil
	if err := r.rc.Read(r.readFn); err != nil {
		r.rbuf = nil
		return 0, err
	}
	r.rbuf = nil
	return r.rn, r.rerr
}

// read is one attempt; false asks the netpoller to wait for readability.
func (r *rawConn) read(fd uintptr) bool {
	n, wait, err := readFD(fd, r.rbuf)
	r.rn, r.rerr = n, err
	return !wait
}

// readFD reads fd once into p: wait when it has nothing to read (EAGAIN),
// io.EOF at its end.
func readFD(fd uintptr, p []byte) (n int, wait bool, err error) {
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return 0, true, nil
		case errno != 0:
			return 0, false, os.NewSyscallError("read", errno)
		case n == 0:
			return 0, false, io.EOF
		}
		return int(n), false, nil
	}
}

func (r *rawConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.wbuf, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	r.wbuf = nil
	if err == nil {
		err = r.werr
	}
	return r.wn, err
}

// write writes what it can; false asks the netpoller to wait for room.
func (r *rawConn) write(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		rest := r.wbuf[r.wn:]
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch errno {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werr = os.NewSyscallError("write", errno)
			return true
		}
	}
	return true
}

// socketSilent reports whether c's socket is open with nothing to read,
// without waiting: a peek that would block.
func socketSilent(c net.Conn) bool {
	r, ok := c.(*rawConn)
	if !ok {
		return true // not a socket newRawConn could wrap: nothing to peek at
	}
	silent := false
	err := r.rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, errno := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		silent = errno == syscall.EAGAIN
		return true // never wait
	})
	return err == nil && silent
}

// pumpOf returns c's pump, or nil when c is not a socket newRawConn
// wrapped (TLS, say): its reader then reads as usual.
func pumpOf(c net.Conn) pumpFunc {
	if r, ok := c.(*rawConn); ok {
		return r.pump
	}
	return nil
}

// pump reads into sink.space() and calls sink.filled after each read, all
// inside one netpoller wait loop. A read that leaves nothing behind, no
// data and no end of stream, lets the next wait go straight to the
// netpoller: an ordinary Read would first make a read that returns EAGAIN,
// because each Read starts by forgetting readiness it has not seen used,
// and a relay that waits between every message pays that read each time.
// The wait stays correct because the netpoller is edge-triggered: data
// that arrives after a read is a new edge.
//
// Only the socket can say that nothing is left (TCP_INQ, which counts a
// received FIN as something): a short read cannot. A FIN that arrived with
// the data, or while the goroutine was being woken for it, is no new edge,
// so a pump that trusted a short read never saw the end of the stream of a
// client that sent a query and closed its side. Without TCP_INQ (a unix
// socket; not Linux) the pump reads until EAGAIN.
//
// TCP_INQ does not count a reset, so the pump also asks the sink whether
// it is settled: whether mandate writes to this peer before it expects
// more from it. A reset that came with the data then fails that write; in
// any other state (a COPY's data, a partial message, an answer still
// coming) the pump reads until EAGAIN, which reports the reset.
//
// sink.idle runs before each wait. pump returns the first error of a read,
// of the sink, or of a wait (a deadline, Close); io.EOF at the end.
func (r *rawConn) pump(sink pumpSink) error {
	var ferr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			var n int
			var wait, drained bool
			var err error
			if r.inq != nil {
				n, wait, drained, err = r.inq.recv(fd, sink.space())
			} else {
				n, wait, err = readFD(fd, sink.space())
			}
			if err != nil {
				ferr = err
				return true
			}
			if !wait {
				if ferr = sink.filled(n); ferr != nil {
					return true
				}
				wait = drained && sink.settled() // nothing left: wait for the next edge
			}
			if wait {
				ferr = sink.idle()
				return ferr != nil
			}
		}
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// unwrapConn is the connection c wraps, or c when it wraps none.
func unwrapConn(c net.Conn) net.Conn {
	if r, ok := c.(*rawConn); ok {
		return r.Conn
	}
	return c
}
