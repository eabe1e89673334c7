//go:build !unix

package proxy

import "net"

// newRawConn is the identity where rawconn.go's system calls do not exist.
func newRawConn(c net.Conn) net.Conn { return c }
