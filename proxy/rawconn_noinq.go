//go:build unix && !(linux && (amd64 || arm64))

package proxy

import (
	"net"
	"syscall"
)

// enableInq: TCP_INQ is Linux's, and read with recvmsg on 64-bit x86 and
// ARM only. Elsewhere the pump reads until EAGAIN and asks no inqMsg.
func enableInq(net.Conn, syscall.RawConn) bool { return false }

type inqMsg struct{}

func (*inqMsg) recv(fd uintptr, p []byte) (n int, wait, drained bool, err error) {
	n, wait, err = readFD(fd, p)
	return n, wait, false, err
}
