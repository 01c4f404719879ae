package lb

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// h2Preface starts every HTTP/2 connection with prior knowledge (h2c).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// splitByProtocol accepts from raw and hands each connection to h2 when it
// opens with the HTTP/2 preface and to h1 otherwise, so that one port
// serves HTTP/1.1 through net/http and h2c through grpc-go. The sniff must
// finish within timeout (the listener's read_header_timeout).
func splitByProtocol(raw net.Listener, h1, h2 *chanListener, timeout time.Duration, log *slog.Logger) {
	for {
		c, err := acceptRetrying(raw, log)
		if err != nil {
			h1.Close()
			h2.Close()
			return
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(timeout))
			// Read what has arrived, as the server's own buffered reader
			// would: leaving request bytes unread in the kernel would turn
			// the server's close after an error reply into a reset.
			buf := make([]byte, 4096)
			n := 0
			for n < len(h2Preface) {
				m, err := c.Read(buf[n:])
				n += m
				if err != nil {
					c.Close()
					return
				}
				if !bytes.HasPrefix([]byte(h2Preface), buf[:min(n, len(h2Preface))]) {
					break
				}
			}
			_ = c.SetReadDeadline(time.Time{})
			pc := &prefixConn{Conn: c, prefix: buf[:n]}
			if n >= len(h2Preface) && string(buf[:len(h2Preface)]) == h2Preface {
				h2.push(pc)
			} else {
				h1.push(pc)
			}
		}()
	}
}

// acceptRetrying accepts from ln and waits out the failures that pass (out
// of descriptors, a handshake the client aborted, a time-out) with a
// growing pause, as net/http does; any other error is returned: ln is
// done. A single EMFILE must not end a listener: the port would go on
// taking connections into its backlog that nobody accepts. An error that
// is not ln's close (a shutdown) is logged, and ln closed, so that the
// kernel stops queueing connections for it.
func acceptRetrying(ln net.Listener, log *slog.Logger) (net.Conn, error) {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err == nil {
			return nc, nil
		}
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)) {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("lb listener stopped accepting", "addr", ln.Addr().String(), "err", err)
				ln.Close()
			}
			return nil, err
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		time.Sleep(backoff)
	}
}

// prefixConn replays the bytes read while sniffing (or by the fast loop
// before it handed the connection to net/http). It also runs
// body_read_timeout for the HTTP/1.1 request bodies net/http reads on it
// (watchBody): while one is read, each read from the socket waits that
// long at most. The time-out then counts pauses between the client's
// bytes, not the length of net/http's body reads: its chunked reader
// reads a whole chunk in one, and a large chunk coming slowly but
// steadily would otherwise pass for a pause.
type prefixConn struct {
	net.Conn
	prefix []byte
	// bodyIdle is body_read_timeout (ns) while a body is read, 0 when
	// none is (the deadline is net/http's), bodyExpired once the
	// request's time-out ended the body's waits.
	bodyIdle atomic.Int64
}

const bodyExpired = -1

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	if d := c.bodyIdle.Load(); d > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(time.Duration(d)))
		if c.bodyIdle.Load() <= 0 {
			c.applyBodyEnd() // ended meanwhile: its deadline, not ours, stands
		}
	}
	return c.Conn.Read(p)
}

// watchBody starts body_read_timeout d for a request body.
func (c *prefixConn) watchBody(d time.Duration) {
	c.bodyIdle.Store(int64(d))
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
}

// endBody ends the body's watch: it was read whole or its request is
// over (the deadline goes back to net/http, which sets none while a
// request runs), or its request's time-out ended it (expired: a deadline
// in the past ends the waits, and stays).
func (c *prefixConn) endBody(expired bool) {
	if expired {
		c.bodyIdle.Store(bodyExpired)
	} else if d := c.bodyIdle.Load(); d <= 0 || !c.bodyIdle.CompareAndSwap(d, 0) {
		return // no watch to end: the deadline is not the body's to clear
	}
	c.applyBodyEnd()
}

func (c *prefixConn) applyBodyEnd() {
	switch c.bodyIdle.Load() {
	case bodyExpired:
		_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	case 0:
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
}

// CloseWrite keeps half-close available to net/http's graceful close.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// chanListener is a net.Listener fed by splitByProtocol.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *chanListener) Addr() net.Addr { return l.addr }

var (
	_ net.Listener = (*chanListener)(nil)
	_ net.Conn     = (*prefixConn)(nil)
)
