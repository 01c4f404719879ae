package lb

import (
	"io"
	"net"
	"net/http"
	"time"
)

// A client that stops reading its answer (slow read, slowloris's mirror)
// would keep the handler waiting in its write, and the upstream
// connection the answer comes on held, for as long as it kept its own
// connection open: enough such clients fill a pool's max_pending. The
// listener's send_timeout (nginx's) bounds how long a write to a client
// may make no progress; past it the write fails and the connection is
// closed (newSendWriter; on HTTP/2, h2Stream.Write resets the stream; an
// upgraded connection's relay, relayUpgrade, closes both sides).

// deadlineWriter bounds the writes to a connection without a RawConn
// (TLS) with its write deadline, moved only once it is within half the
// timeout: a timer update per half timeout, not per write. A write may
// thus fail after between half and all of the timeout without progress;
// net/http's own deadlines are as coarse.
type deadlineWriter struct {
	nc       net.Conn
	timeout  time.Duration
	deadline time.Time
}

func newDeadlineWriter(nc net.Conn, timeout time.Duration) io.Writer {
	if timeout <= 0 {
		return nc
	}
	return &deadlineWriter{nc: nc, timeout: timeout}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); w.deadline.Sub(now) < w.timeout/2 {
		w.deadline = now.Add(w.timeout)
		if err := w.nc.SetWriteDeadline(w.deadline); err != nil {
			return 0, err
		}
	}
	return w.nc.Write(p)
}

// sendTimeoutWriter is what respond writes an answer's body to. The fast
// loop's writer and HTTP/2 streams bound their writes themselves; a
// request the fast loop left to net/http (h2c on a listener without
// native_grpc, heads past its buffer) gets per-write deadlines through
// its ResponseController, moved as deadlineWriter moves them.
func sendTimeoutWriter(w http.ResponseWriter, r *http.Request) io.Writer {
	switch w.(type) {
	case *h1ResponseWriter, *h2Stream:
		return w
	}
	l, _ := r.Context().Value(listenerKey{}).(*listener)
	if l == nil || l.cfg.SendTimeout <= 0 {
		return w
	}
	return &rcDeadlineWriter{w: w, rc: http.NewResponseController(w), timeout: time.Duration(l.cfg.SendTimeout)}
}

// rcDeadlineWriter is deadlineWriter for a net/http ResponseWriter.
type rcDeadlineWriter struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	deadline time.Time
}

func (w *rcDeadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); w.deadline.Sub(now) < w.timeout/2 {
		w.deadline = now.Add(w.timeout)
		_ = w.rc.SetWriteDeadline(w.deadline) // unsupported: unbounded, as before
	}
	return w.w.Write(p)
}

// clear takes the deadline off once the answer is written: net/http
// leaves a connection's write deadline as it is, and a stale one would
// fail the next answer's first write on a keep-alive connection.
func (w *rcDeadlineWriter) clear() {
	if !w.deadline.IsZero() {
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}
