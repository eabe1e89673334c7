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
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			r.rerr = os.NewSyscallError("read", errno)
		case n == 0:
			r.rerr = io.EOF
		default:
			r.rn = int(n)
		}
		return true
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
