//go:build unix

package lb

import (
	"io"
	"net"
	"os"
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

// readNoWait reads what is already there without waiting. ok is false
// when nothing is (EAGAIN): the caller then waits in an ordinary Read,
// which reads again first, so readiness that arrives in between is never
// lost.
func readNoWait(raw syscall.RawConn, p []byte) (n int, ok bool, err error) {
	if raw == nil || len(p) == 0 {
		return 0, false, nil
	}
	var rerr error
	cerr := raw.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), p)
		return true // never wait here
	})
	switch {
	case cerr != nil:
		return 0, true, cerr // closed or deadline passed: as Read would say
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		return 0, false, nil
	case rerr == syscall.EINTR:
		return 0, false, nil
	case rerr != nil:
		return 0, true, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, true, io.EOF
	}
	return n, true, nil
}
