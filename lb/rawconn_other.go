//go:build !unix

package lb

import (
	"io"
	"net"
	"time"
)

// noWaitReader is unavailable here: every read waits (its fields only
// mirror the unix one's for the fast loop).
type noWaitReader struct {
	p      []byte
	refill func() []byte
}

func (r *noWaitReader) init(net.Conn) {}

func (r *noWaitReader) read([]byte) (int, bool, error) { return 0, false, nil }

func (r *noWaitReader) readWait([]byte, func() bool) (int, bool, bool, bool, error) {
	return 0, false, false, false, nil
}

func newConnWriter(nc net.Conn) io.Writer { return nc }

// newSendWriter is what a client connection's answers are written to: nc
// with write deadlines (stall: the listener's send_timeout).
func newSendWriter(nc net.Conn, stall time.Duration) io.Writer { return newDeadlineWriter(nc, stall) }

func newConnReader(nc net.Conn) io.Reader { return nc }

// writeAwaiter is unavailable here: requests are written plainly.
type writeAwaiter struct{}

func newWriteAwaiter(net.Conn, io.Writer, func()) *writeAwaiter { return nil }

func (a *writeAwaiter) writeAwait(p []byte) (int, error) {
	panic("lb: no writeAwaiter on this platform")
}
