//go:build unix

package lb

import (
	"net"
	"syscall"
)

// connAlive reports whether an idle pooled connection still looks usable:
// a non-blocking peek sees neither EOF (the upstream closed it) nor stray
// bytes. One cheap syscall, done only for connections idle a while.
func connAlive(c net.Conn) bool {
	raw := rawConnOf(c)
	if raw == nil {
		return true // nothing to peek with (TLS): let the exchange find out
	}
	alive := true
	var buf [1]byte
	err := raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
			alive = true
		case rerr != nil || n == 0 || n > 0:
			alive = false
		}
		return true // never wait: this is a probe
	})
	return err == nil && alive
}
