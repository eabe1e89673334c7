//go:build linux && (amd64 || arm64)

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// tcpInq is Linux's TCP_INQ socket option and the TCP_CM_INQ control
// message it adds to every recvmsg: how many bytes are left to read, and 1
// when none are but the peer's FIN has arrived (Linux 4.18).
const tcpInq = 36

// enableInq asks a TCP socket for TCP_INQ; false when c is no TCP socket or
// the kernel refuses.
func enableInq(c net.Conn, rc syscall.RawConn) bool {
	if _, ok := c.(*net.TCPConn); !ok {
		return false
	}
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_TCP, tcpInq, 1)
	}); cerr != nil {
		return false
	}
	return err == nil
}

// inqMsg is a recvmsg's header and control buffer, kept with the
// connection so that a read allocates nothing.
type inqMsg struct {
	msg syscall.Msghdr
	iov syscall.Iovec
	oob [32]byte // one cmsghdr and an int, aligned
}

// recv reads fd once into p, as readFD does, and reports whether the
// socket has nothing left: no data and no end of stream.
func (m *inqMsg) recv(fd uintptr, p []byte) (n int, wait, drained bool, err error) {
	m.iov.Base = &p[0]
	m.iov.SetLen(len(p))
	defer func() { m.iov.Base = nil }() // do not keep a pooled buffer alive
	m.msg.Iov = &m.iov
	m.msg.Iovlen = 1
	for {
		m.msg.Control = &m.oob[0]
		m.msg.SetControllen(len(m.oob))
		k, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&m.msg)), 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return 0, true, false, nil
		case errno != 0:
			return 0, false, false, os.NewSyscallError("recvmsg", errno)
		case k == 0:
			return 0, false, false, io.EOF
		}
		return int(k), false, m.left() == 0, nil
	}
}

// left is the TCP_CM_INQ hint of the last recv; 1 (read on) without one.
func (m *inqMsg) left() int {
	if int(m.msg.Controllen) < syscall.CmsgLen(4) {
		return 1
	}
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&m.oob[0]))
	if h.Level != syscall.SOL_TCP || h.Type != tcpInq {
		return 1
	}
	return int(*(*int32)(unsafe.Pointer(&m.oob[syscall.CmsgLen(0)])))
}
