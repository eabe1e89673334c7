//go:build !unix

package proxy

import "net"

// newRawConn is the identity where rawconn.go's system calls do not exist.
func newRawConn(c net.Conn) net.Conn { return c }

// socketSilent cannot peek here; a dead pooled connection shows itself at
// the session's first statement instead.
func socketSilent(net.Conn) bool { return true }

// pumpOf has no pump to offer here: every reader reads as usual.
func pumpOf(net.Conn) pumpFunc { return nil }

// unwrapConn: nothing is wrapped here.
func unwrapConn(c net.Conn) net.Conn { return c }
