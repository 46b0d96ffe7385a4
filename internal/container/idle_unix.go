//go:build unix

package container

import (
	"net"
	"syscall"
)

// closedByPeer reports whether the peer of an idle connection has closed
// it (or sent bytes nobody asked for, or the socket has an error pending),
// without blocking: one non-blocking MSG_PEEK read, which leaves whatever
// it sees in the socket. A connection that cannot be inspected counts as
// open.
func closedByPeer(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	rerr := raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
			// Nothing to read: the connection stands.
		default:
			// 0 bytes is the end of the stream; bytes or an error are
			// as bad for a connection about to carry a request.
			closed = err != nil || n >= 0
		}
		return true // never wait for readiness
	})
	return closed || rerr != nil
}
