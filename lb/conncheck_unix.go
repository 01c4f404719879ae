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
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
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

// waitReadable parks until c has data (or an error or deadline is
// pending) without issuing a read syscall. The caller reads afterwards in
// any case, so a spurious wake-up only costs that read.
func waitReadable(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	first := true
	_ = raw.Read(func(uintptr) bool {
		if first {
			first = false
			return false // not ready: wait for the poller
		}
		return true
	})
}
