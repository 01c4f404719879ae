package lb

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// h2Preface starts every HTTP/2 connection with prior knowledge (h2c).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffer reads what a connection begins with before the servers see
// it, in a goroutine of its own: the PROXY protocol header (proxy
// != nil; proxyproto.go) and, on a native_grpc port (split), whether the
// HTTP/2 preface follows. It then hands the connection to h2 (the gRPC
// engine) when it opens with the preface and to h1 (the fast loop)
// otherwise, so that one port serves HTTP/1.1 and h2c. A sniff must
// finish within the listener's read_header_timeout.
//
// In a drain (the listener closed) it closes the connections that have
// sent nothing yet (a PROXY header aside), as a drain closes idle ones,
// lets those that have begun finish their sniff and be handed on, and
// then closes h1, h2 and done: a request sent just before the drain is
// served, not cut.
type sniffer struct {
	h1, h2  *chanListener
	timeout time.Duration
	log     *slog.Logger
	done    chan struct{}
	split   bool
	// proxy returns trusted_proxies, the peers that may send a PROXY
	// header; nil: the listener takes none.
	proxy func() *proxyTrust
	// Connections refused for their PROXY header: from a peer not in
	// trusted_proxies, or not valid (lb_proxy_protocol_refused_total).
	refusedUntrusted, refusedInvalid atomic.Uint64

	wg       sync.WaitGroup
	mu       sync.Mutex
	draining bool
	sniffing map[net.Conn]*sniffState // the connections being sniffed
}

func newSniffer(addr net.Addr, timeout time.Duration, log *slog.Logger, split bool, proxy func() *proxyTrust) *sniffer {
	return &sniffer{h1: newChanListener(addr), h2: newChanListener(addr), timeout: timeout, log: log,
		split: split, proxy: proxy, done: make(chan struct{}), sniffing: map[net.Conn]*sniffState{}}
}

// run accepts from raw until it is closed, then drains.
func (sn *sniffer) run(raw net.Listener) {
	for {
		c, err := acceptRetrying(raw, sn.log)
		if err != nil {
			sn.closeIdle()
			sn.wg.Wait()
			sn.h1.Close()
			sn.h2.Close()
			close(sn.done)
			return
		}
		if !sn.add(c) {
			c.Close()
			continue
		}
		go func() {
			defer sn.wg.Done()
			pc, isH2 := sn.sniff(c)
			switch {
			case pc == nil:
			case isH2:
				sn.h2.push(pc)
			default:
				sn.h1.push(pc)
			}
		}()
	}
}

// wait waits until the drain has handed on what had begun; false when
// ctx ended first (then call abort).
func (sn *sniffer) wait(ctx context.Context) bool {
	select {
	case <-sn.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// abort ends the drain at once: the connections still being sniffed
// are closed, and so are h1 and h2, whose accepts then end.
func (sn *sniffer) abort() {
	sn.mu.Lock()
	sn.draining = true
	for c := range sn.sniffing {
		c.Close()
		delete(sn.sniffing, c)
	}
	sn.mu.Unlock()
	sn.h1.Close()
	sn.h2.Close()
}

type sniffState struct {
	begun    bool      // the client has sent a byte: no longer idle
	deadline time.Time // the end of its read_header_timeout
}

// sniffDrainGrace: how long, at most, a drain waits for the rest of what
// a client began to send (a preface split across packets comes at once):
// one client that stops after a byte must not hold off the drain of the
// whole listener (the engines drain once the sniffs are done).
const sniffDrainGrace = time.Second

// add notes c, whose sniff then begins; false once draining. c's
// deadline is set here, not by the sniff, so that closeIdle's shorter
// one cannot be overwritten.
func (sn *sniffer) add(c net.Conn) bool {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.draining {
		return false
	}
	st := &sniffState{deadline: time.Now().Add(sn.timeout)}
	_ = c.SetReadDeadline(st.deadline)
	sn.sniffing[c] = st
	sn.wg.Add(1)
	return true
}

// closeIdle starts the drain: the connections that have sent nothing are
// closed (their sniff's read fails), the others get sniffDrainGrace at
// most to finish.
func (sn *sniffer) closeIdle() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.draining = true
	grace := time.Now().Add(sniffDrainGrace)
	for c, st := range sn.sniffing {
		switch {
		case !st.begun:
			c.Close()
			delete(sn.sniffing, c)
		case grace.Before(st.deadline):
			_ = c.SetReadDeadline(grace)
		}
	}
}

// begun notes that c's client has sent bytes; false when the drain
// closed c first.
func (sn *sniffer) begun(c net.Conn) bool {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	st := sn.sniffing[c]
	if st == nil {
		return false
	}
	st.begun = true
	return true
}

// forget ends c's sniff: its deadline is cleared under mu, so that a
// closeIdle cannot shorten it after (and the server it goes to inherit
// it).
func (sn *sniffer) forget(c net.Conn) {
	sn.mu.Lock()
	delete(sn.sniffing, c)
	_ = c.SetReadDeadline(time.Time{})
	sn.mu.Unlock()
}

// sniff reads c's first bytes: the connection, with the bytes read after
// any PROXY header to replay, and whether they are the HTTP/2 preface;
// nil when c failed, was refused or the drain closed it (it is closed).
func (sn *sniffer) sniff(c net.Conn) (pc *prefixConn, isH2 bool) {
	defer sn.forget(c)
	// Read what has arrived, as the server's own buffered reader would:
	// leaving request bytes unread in the kernel would turn the server's
	// close after an error reply into a reset.
	buf := make([]byte, sniffBufSize)
	n := 0
	read := func() bool {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			c.Close()
			return false
		}
		return true
	}
	var nc net.Conn = c
	if sn.proxy != nil {
		var ok bool
		if nc, ok = sn.proxyHeader(c, &buf, &n, read); !ok {
			c.Close()
			return nil, false
		}
	}
	if sn.split && n == 0 && !read() {
		return nil, false
	}
	// The client's first byte (past any PROXY header): the connection is
	// then no longer idle for the drain. With none yet, a connection
	// that is not split is handed on as it is, idle.
	if n > 0 && !sn.begun(c) {
		c.Close() // the drain closed it, as idle
		return nil, false
	}
	if sn.split {
		for n < len(h2Preface) && bytes.HasPrefix([]byte(h2Preface), buf[:n]) {
			if !read() {
				return nil, false
			}
		}
	}
	return &prefixConn{Conn: nc, prefix: buf[:n]}, sn.split && n >= len(h2Preface) && string(buf[:len(h2Preface)]) == h2Preface
}

// proxyHeader reads and removes c's PROXY header (buf[:*n] holds what
// was read; read reads more): the connection to hand on, which reports
// the header's client as its address. false refuses c: its peer is not a
// trusted proxy, or its header is not valid.
func (sn *sniffer) proxyHeader(c net.Conn, buf *[]byte, n *int, read func() bool) (net.Conn, bool) {
	peer := netip.Addr{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		peer = ta.AddrPort().Addr()
	}
	if !sn.proxy().trusts(peer) {
		sn.refusedUntrusted.Add(1)
		sn.log.Debug("lb: PROXY protocol connection refused: the peer is not in trusted_proxies", "peer", c.RemoteAddr().String())
		return nil, false
	}
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return nil, false
	}
	for {
		if !read() {
			return nil, false
		}
		ph, err := parseProxyHeader((*buf)[:*n])
		if err == errProxyHeaderShort {
			if hl := proxyV2Len((*buf)[:*n]); hl > len(*buf) {
				// A version 2 header longer than the buffer (many TLVs):
				// read it to its end, and not a byte past it, so that what
				// follows still fits the fast loop's buffer.
				*buf = append(*buf, make([]byte, hl-len(*buf))...)
			}
			continue
		}
		if err != nil {
			sn.refusedInvalid.Add(1)
			sn.log.Debug("lb: PROXY protocol connection refused", "peer", c.RemoteAddr().String(), "err", err)
			return nil, false
		}
		*n = copy(*buf, (*buf)[ph.len:*n])
		*buf = (*buf)[:sniffBufSize]
		if !ph.client.IsValid() {
			return c, true // LOCAL: the balancer's own connection
		}
		return &proxiedConn{TCPConn: tc, client: net.TCPAddrFromAddrPort(ph.client), tls: ph.tls}, true
	}
}

// sniffBufSize bounds what a sniff reads past any PROXY header: the
// fast loop's buffer (h1BufSize) must hold it.
const sniffBufSize = 4096

var _ [h1BufSize - sniffBufSize]struct{} // compiles while sniffBufSize <= h1BufSize

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
