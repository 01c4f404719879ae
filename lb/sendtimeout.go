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

// deadlineWriter bounds the writes to w with a write deadline (set),
// moved only once it is within half the timeout: a timer update per half
// timeout, not per write. A write may thus fail after between half and
// all of the timeout without progress; net/http's own deadlines are as
// coarse. It serves connections without a RawConn (TLS), upgraded ones,
// and requests the fast loop left to net/http (through their
// ResponseController).
type deadlineWriter struct {
	w        io.Writer
	set      func(time.Time) error
	timeout  time.Duration
	deadline time.Time
}

func newDeadlineWriter(nc net.Conn, timeout time.Duration) io.Writer {
	if timeout <= 0 {
		return nc
	}
	return &deadlineWriter{w: nc, set: nc.SetWriteDeadline, timeout: timeout}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); w.deadline.Sub(now) < w.timeout/2 {
		w.deadline = now.Add(w.timeout)
		if err := w.set(w.deadline); err != nil {
			return 0, err
		}
	}
	return w.w.Write(p)
}

// clear takes the deadline off once the answer is written: net/http
// leaves a connection's write deadline as it is, and a stale one would
// fail the next answer's first write on a keep-alive connection.
func (w *deadlineWriter) clear() {
	if !w.deadline.IsZero() {
		_ = w.set(time.Time{})
	}
}

// sendTimeoutWriter is what respond writes an answer's body to. The fast
// loop's writer and HTTP/2 streams bound their writes themselves; a
// request the fast loop left to net/http (h2c on a listener without
// native_grpc, heads past its buffer) gets a deadlineWriter on its
// ResponseController; respond clears its deadline after the answer.
func sendTimeoutWriter(w http.ResponseWriter, r *http.Request) io.Writer {
	switch w.(type) {
	case *h1ResponseWriter, *h2Stream:
		return w
	}
	l, _ := r.Context().Value(listenerKey{}).(*listener)
	if l == nil || l.cfg.SendTimeout <= 0 {
		return w
	}
	rc := http.NewResponseController(w)
	set := func(t time.Time) error {
		_ = rc.SetWriteDeadline(t) // unsupported: unbounded, as before
		return nil
	}
	return &deadlineWriter{w: w, set: set, timeout: time.Duration(l.cfg.SendTimeout)}
}
