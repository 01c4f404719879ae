//go:build unix

package lb

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// noWaitReader reads what is already there without waiting (read) or,
// after a miss, waits in the same read lock (readWait), for one
// connection; its RawConn closure is made once, not per call. A caller
// whose read missed waits in an ordinary Read or in readWait, both of
// which read again first, so readiness that arrives in between is never
// lost.
type noWaitReader struct {
	raw syscall.RawConn
	fn  func(uintptr) bool
	p   []byte
	// refill, when set, gives the read after a wait its buffer when wait
	// took p away (set it to nil): an idle connection need not hold one.
	refill  func() []byte
	n       int
	err     error
	wait    func() bool // readWait's: before the first wait
	waited  bool
	stopped bool
}

// init binds r to nc; a connection without a RawConn leaves r unusable
// (its calls report ok false).
func (r *noWaitReader) init(nc net.Conn) {
	raw := rawConnOf(nc)
	if raw == nil {
		return
	}
	r.raw = raw
	r.fn = func(fd uintptr) bool {
		if r.p == nil && r.refill != nil {
			r.p = r.refill()
		}
		r.n, r.err = rawRead(int(fd), r.p)
		if r.wait == nil || (r.err != syscall.EAGAIN && r.err != syscall.EWOULDBLOCK) {
			return true
		}
		if !r.waited {
			r.waited = true
			if !r.wait() {
				r.stopped = true
				return true
			}
		}
		return false // wait for the poller, then read again
	}
}

// read reads what is already there: ok is false when nothing is there
// yet (EAGAIN).
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
	case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
		return 0, false, nil
	case rerr != nil:
		return 0, true, connOpError("read", nil, rerr)
	case n == 0:
		return 0, true, io.EOF
	}
	return n, true, nil
}

// readWait reads like net.Conn.Read, but when nothing is there yet it
// calls wait (once) and then waits for the poller, within one read lock.
// A plain Read after a failed read would make a second read syscall,
// doomed like the first, before it waits: its readiness reset demands
// that read, and this one's comes before the first. waited reports that
// wait was called; stopped that it returned false, and nothing was read.
// ok is false when this connection cannot read so (use net.Conn.Read).
func (r *noWaitReader) readWait(p []byte, wait func() bool) (n int, waited, stopped, ok bool, err error) {
	if r.raw == nil || len(p) == 0 {
		return 0, false, false, false, nil
	}
	r.p, r.wait, r.waited, r.stopped = p, wait, false, false
	cerr := r.raw.Read(r.fn)
	n, rerr := r.n, r.err
	waited, stopped = r.waited, r.stopped
	r.p, r.wait = nil, nil
	switch {
	case stopped:
		return 0, waited, true, true, nil
	case cerr != nil || rerr != nil:
		return 0, waited, false, true, connOpError("read", cerr, rerr)
	case n == 0:
		return 0, waited, false, true, io.EOF
	}
	return n, waited, false, true, nil
}

// connWriter writes to a connection like net.Conn.Write, through its
// RawConn with rawWrite (no entersyscall; see rawio_linux.go). Its
// closure is made once, not per call.
type connWriter struct {
	raw syscall.RawConn
	fn  func(uintptr) bool
	p   []byte
	n   int
	err error
	// stall (a client connection's send_timeout; 0: none) bounds how long
	// a write may wait without the peer taking a byte. nc's write deadline
	// is set only once a write would block (noWait's first pass found the
	// socket's buffer full), so writes that fit cost nothing more.
	nc     net.Conn
	stall  time.Duration
	noWait bool
}

// newConnWriter returns nc's connWriter, or nc itself when it has no
// RawConn (TLS, tests' pipes).
func newConnWriter(nc net.Conn) io.Writer {
	raw := rawConnOf(nc)
	if raw == nil {
		return nc
	}
	w := &connWriter{raw: raw}
	w.fn = func(fd uintptr) bool {
		for len(w.p) > 0 {
			n, err := rawWrite(int(fd), w.p)
			switch {
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				return w.noWait // wait for the poller, unless told not to
			case err != nil:
				w.err = err
				return true
			}
			w.n += n
			w.p = w.p[n:]
		}
		return true
	}
	return w
}

// newSendWriter is what a client connection's answers are written to:
// its connWriter, or for a connection without a RawConn (TLS) nc with
// write deadlines; stall is the listener's send_timeout.
func newSendWriter(nc net.Conn, stall time.Duration) io.Writer {
	w := newConnWriter(nc)
	cw, ok := w.(*connWriter)
	if !ok {
		return newDeadlineWriter(nc, stall)
	}
	cw.nc, cw.stall = nc, stall
	return cw
}

func (w *connWriter) Write(p []byte) (int, error) {
	w.p, w.n, w.err = p, 0, nil
	w.noWait = w.stall > 0
	cerr := w.raw.Write(w.fn)
	if w.noWait {
		w.noWait = false
		if cerr == nil && w.err == nil && len(w.p) > 0 {
			cerr = w.waitWrite()
		}
	}
	n, err := w.n, w.err
	w.p, w.n, w.err = nil, 0, nil
	if cerr != nil || err != nil {
		return n, connOpError("write", cerr, err)
	}
	return n, nil
}

// waitWrite waits for the peer to take the rest of w.p, for as long as
// it takes some within each stall: a slow reader is served, one that
// stopped is not waited for.
func (w *connWriter) waitWrite() error {
	defer w.nc.SetWriteDeadline(time.Time{})
	for {
		before := w.n
		if err := w.nc.SetWriteDeadline(time.Now().Add(w.stall)); err != nil {
			return err
		}
		err := w.raw.Write(w.fn)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && w.n > before && len(w.p) > 0 {
			continue
		}
		return err
	}
}

// rawConnOf returns nc's RawConn, or nil when it has none (TLS, pipes).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// connOpError reports a failed raw read or write as net.Conn's Read and
// Write do: cerr is the RawConn's own error (a deadline, a close while
// waiting), else errno is the system call's.
func connOpError(op string, cerr, errno error) error {
	if cerr != nil {
		if oe, isOp := cerr.(*net.OpError); isOp {
			cerr = oe.Err
		}
		return &net.OpError{Op: op, Net: "tcp", Err: cerr}
	}
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
}

// connReader reads from a connection like net.Conn.Read, through its
// RawConn with rawRead (see rawio_linux.go).
type connReader struct {
	raw syscall.RawConn
	fn  func(uintptr) bool
	p   []byte
	n   int
	err error
}

// newConnReader returns nc's connReader, or nc itself when it has no
// RawConn.
func newConnReader(nc net.Conn) io.Reader {
	raw := rawConnOf(nc)
	if raw == nil {
		return nc
	}
	r := &connReader{raw: raw}
	r.fn = func(fd uintptr) bool {
		r.n, r.err = rawRead(int(fd), r.p)
		return r.err != syscall.EAGAIN && r.err != syscall.EWOULDBLOCK
	}
	return r
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p = p
	cerr := r.raw.Read(r.fn)
	n, err := r.n, r.err
	r.p, r.n, r.err = nil, 0, nil
	switch {
	case cerr != nil || err != nil:
		return 0, connOpError("read", cerr, err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// writeAwaiter writes a request and then waits until its connection has
// something to read (the answer), both within one RawConn.Read. Every
// RawConn.Read first forgets the readiness the poller has recorded, so a
// plain write followed by a read must read once before it may wait; with
// the answer not there yet, that read fails with EAGAIN: a wasted system
// call on most exchanges. Here the readiness is forgotten before the
// request leaves, so whatever the poller records afterwards is the
// answer's arrival, and the wait needs no read before it.
type writeAwaiter struct {
	raw    syscall.RawConn
	w      io.Writer // the connection's writer (a connWriter)
	before func()    // runs once the request is out, before the wait
	fn     func(uintptr) bool
	p      []byte
	wrote  bool
	n      int
	err    error
}

// newWriteAwaiter returns nc's writeAwaiter writing through w, or nil
// when nc has no RawConn.
func newWriteAwaiter(nc net.Conn, w io.Writer, before func()) *writeAwaiter {
	raw := rawConnOf(nc)
	if raw == nil {
		return nil
	}
	a := &writeAwaiter{raw: raw, w: w, before: before}
	a.fn = func(uintptr) bool {
		if a.wrote {
			return true // readable (or woken for a close or deadline)
		}
		a.wrote = true
		// The write lock is not the read lock held here: w may wait for
		// the socket buffer as usual.
		a.n, a.err = a.w.Write(a.p)
		if a.err != nil {
			return true
		}
		a.before()
		return false
	}
	return a
}

// writeAwait writes p and returns once the connection has something to
// read, or its read deadline passed, or it was closed: the next read
// reports those. A read side that cannot be locked (closed) leaves the
// write to w alone, which then reports the error as writes do.
func (a *writeAwaiter) writeAwait(p []byte) (int, error) {
	a.p, a.wrote, a.n, a.err = p, false, 0, nil
	a.raw.Read(a.fn) // its error is the wait's, for the next read to report
	wrote, n, err := a.wrote, a.n, a.err
	a.p, a.n, a.err = nil, 0, nil
	if !wrote {
		return a.w.Write(p)
	}
	return n, err
}
