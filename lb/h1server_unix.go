//go:build unix

package lb

import (
	"io"
	"net"
	"os"
	"syscall"
)

// noWaitReader is readNoWait for one connection, without the closure
// that readNoWait allocates on every call: its closure is made once.
type noWaitReader struct {
	raw syscall.RawConn
	fn  func(uintptr) bool
	p   []byte
	n   int
	err error
}

func (r *noWaitReader) init(raw syscall.RawConn) {
	r.raw = raw
	r.fn = func(fd uintptr) bool {
		r.n, r.err = syscall.Read(int(fd), r.p)
		return true // never wait here
	}
}

// read is readNoWait: ok is false when nothing is there yet.
func (r *noWaitReader) read(p []byte) (n int, ok bool, err error) {
	if r.raw == nil || len(p) == 0 {
		return 0, false, nil
	}
	r.p = p
	cerr := r.raw.Read(r.fn)
	r.p = nil
	n, rerr := r.n, r.err
	switch {
	case cerr != nil:
		return 0, true, cerr
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR:
		return 0, false, nil
	case rerr != nil:
		return 0, true, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return 0, true, io.EOF
	}
	return n, true, nil
}
