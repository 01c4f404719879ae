package lb

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Relay is the native gRPC engine: it serves the h2c connections of a
// native_grpc listener itself and relays each call frame by frame over
// pooled, multiplexed HTTP/2 connections to the upstreams (h2upstream.go).
// Headers are decoded once (for routing and admission) and re-encoded
// with the other connection's HPACK state; DATA is copied once, from the
// read buffer of one connection into the write buffer of the other.
// Per call there is no goroutine, only per connection (a reader and a
// writer), and the writer sends all frames that piled up while it was
// busy in one system call; that batching is what makes the relay cheaper
// than grpc-go's per-call machinery (see bench/lb/RESULTS.md).
type h2Relay struct {
	s *Server
	l *listener

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*h2conn]struct{}
	draining bool
	stopped  bool
	wg       sync.WaitGroup
	acceptWG sync.WaitGroup // Serve's loop

	panics atomic.Int64
	// httpRequests counts the HTTP requests served (h2serve.go), for
	// lb_http2_requests_total.
	httpRequests atomic.Uint64
	// kitsReused counts the HTTP requests that had an earlier one's
	// storage (h2Kit), for tests.
	kitsReused atomic.Uint64
}

var errRelayStopped = errors.New("gRPC engine stopped")

// Serve accepts h2c connections (their preface still unread) until ln
// closes.
func (e *h2Relay) Serve(ln net.Listener) error {
	e.mu.Lock()
	if e.stopped || e.draining {
		e.mu.Unlock()
		ln.Close()
		return nil
	}
	e.ln = ln
	e.acceptWG.Add(1)
	e.mu.Unlock()
	defer e.acceptWG.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			e.mu.Lock()
			done := e.stopped || e.draining
			e.mu.Unlock()
			if done || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		c := e.track(nc, true)
		if c == nil {
			nc.Close()
			continue
		}
		go e.serveConn(c)
	}
}

// track registers a new client connection; nil once stopped, or once
// draining for one adopted (not accepted by Serve). Serve's, which the
// sniffer handed on with the client's first bytes, are taken until its
// listener closes: the drain waits for its loop (closeListener), so that
// the connection is answered (serveConn's GOAWAY), not cut.
func (e *h2Relay) track(nc net.Conn, accepted bool) *h2conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped || e.draining && !accepted {
		return nil
	}
	c := newH2Conn(nc, true, e.s.log)
	c.srv, c.engine = e.s, e
	if pc, ok := nc.(*prefixConn); ok && len(pc.prefix) >= len(h2Preface) {
		c.prefaced = true // the sniffer read it
	}
	c.panics = func() { e.panics.Add(1) }
	c.remoteAddr = nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(c.remoteAddr); err == nil {
		c.remoteIP = host
		c.peer, _ = netip.ParseAddr(host)
	}
	c.rateKey = ipKey(c.remoteIP) // key: ip rate limits, made once
	c.reqTemplate = &http.Request{Proto: "HTTP/2.0", ProtoMajor: 2, RemoteAddr: c.remoteAddr}
	c.balancerTLS = balancerTLS(e.l.cfg.ForwardedProto, nc)
	c.bodyTimeout = time.Duration(e.l.cfg.BodyReadTimeout)
	c.sendTimeout = time.Duration(e.l.cfg.SendTimeout)
	// The client has read_header_timeout to send its preface and
	// SETTINGS. Set here, under mu, so that a drain's shorter one
	// (GracefulStop) comes after it.
	if t := time.Duration(e.l.cfg.ReadHeaderTimeout); t > 0 {
		c.prefaceBy = time.Now().Add(t)
		_ = nc.SetReadDeadline(c.prefaceBy)
	}
	if e.conns == nil {
		e.conns = map[*h2conn]struct{}{}
	}
	e.conns[c] = struct{}{}
	e.wg.Add(1)
	return c
}

func (e *h2Relay) serveConn(c *h2conn) {
	defer func() {
		close(c.readDone) // after the reader: the writer's close may go on (finish)
		e.mu.Lock()
		delete(e.conns, c)
		e.mu.Unlock()
		e.wg.Done()
	}()
	var preface [len(h2Preface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != h2Preface {
		c.nc.Close()
		return
	}
	c.mu.Lock()
	c.prefaced = true // a drain from now on answers it (GracefulStop)
	c.mu.Unlock()
	c.start(uint32(e.l.cfg.MaxHeaderBytes))
	if e.isDraining() {
		// GracefulStop found this connection not yet started (or came
		// since): its GOAWAY is ours to send.
		c.mu.Lock()
		c.goAwayLocked()
		c.unlock()
	}
	f, err := c.fr.ReadFrame()
	if err == nil {
		err = c.dispatch(f) // must be SETTINGS
	}
	if err != nil {
		c.nc.Close()
		c.shutdown(err)
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	if t := time.Duration(e.l.cfg.IdleTimeout); t > 0 {
		c.mu.Lock()
		c.idleTimeout, c.idleSince = t, time.Now()
		c.idleTimer = time.AfterFunc(t, c.onIdleTimer)
		c.mu.Unlock()
	}
	c.readLoop()
}

// relayRoute decides who carries a request: the relay (relay true) a gRPC
// call (a POST whose content-type is gRPC's; every gRPC client sends one)
// whose route's pool speaks h2c (the relay dials no TLS), or that has no
// route (the relay answers Unimplemented); ServeHTTP anything else, an
// HTTP request, whose body's length, for one, is checked. st and ro are
// the state and route the relay then uses: a call is routed once.
func (c *h2conn) relayRoute(fields []hpack.HeaderField) (st *state, ro *route, relay bool) {
	var method, ct, host, path string
	for _, hf := range fields {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case "content-type":
			ct = hf.Value
		case ":authority":
			host = hf.Value
		case ":path":
			path = hf.Value
		}
	}
	if method != http.MethodPost || !isGRPCContentType(ct) || hasDotSegment(path) || strings.Contains(path, "%") {
		// Not a gRPC call, or a path the relay would route as sent while
		// an upstream may resolve or decode it (ServeHTTP refuses dot
		// segments, decoded): left to ServeHTTP.
		return nil, nil, false
	}
	st = c.srv.state.Load()
	ro = st.router.matchParts(host, path, ct)
	return st, ro, ro == nil || ro.pool.cfg.Protocol == "h2c"
}

// onIdleTimer ends a connection that has had no stream open for its
// idleTimeout, with GOAWAY so that the peer knows no stream was lost; otherwise it looks again when that could be the
// case. The timer runs once per idle_timeout, not per call: a call only
// notes the time when it leaves the connection without streams.
func (c *h2conn) onIdleTimer() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	wait := c.idleTimeout
	if len(c.streams) == 0 {
		// Nothing in flight at a look: an idle connection does not keep
		// its finished requests' storage (h2Kit) for the next.
		c.kits = nil
		if wait -= time.Since(c.idleSince); wait <= 0 {
			c.goAwayLocked() // with no stream, it closes
			c.unlock()
			return
		}
	}
	c.idleTimer.Reset(wait)
	c.unlock()
}

// GracefulStop sends GOAWAY to every client and waits until the calls in
// flight have ended and the connections closed.
func (e *h2Relay) GracefulStop() {
	for _, c := range e.closeListener(&e.draining) {
		c.mu.Lock()
		switch {
		case c.started:
			c.goAwayLocked()
		case !c.prefaced:
			// Still to send its preface (an adopted TLS connection): one
			// sent with requests just before the drain is read at once
			// and answered with GOAWAY (serveConn); one that stays idle
			// ends when this grace does, not at read_header_timeout.
			if d := time.Now().Add(sniffDrainGrace); c.prefaceBy.IsZero() || d.Before(c.prefaceBy) {
				_ = c.nc.SetReadDeadline(d)
			}
		}
		// One whose preface is read gets its GOAWAY as it starts
		// (serveConn): a request it sent with its preface is then known
		// not to have been served, and the client may send it elsewhere.
		c.unlock()
	}
	e.wg.Wait()
}

// refuseH2 answers an HTTP/2 connection that the draining engine no
// longer takes (a TLS handshake that completed during the drain) with
// SETTINGS and GOAWAY(0): whatever it sent was not served, and its client
// may send it elsewhere. Then it closes with a linger (lingerClose), on
// the fast loop's goroutine, which the drain waits for.
func refuseH2(tc *tls.Conn) {
	_ = tc.SetWriteDeadline(time.Now().Add(h2Linger))
	fr := http2.NewFramer(tc, nil)
	if fr.WriteSettings() != nil || fr.WriteGoAway(0, http2.ErrCodeNo, nil) != nil {
		tc.Close()
		return
	}
	lingerClose(tc, nil)
}

// isDraining reports whether GracefulStop or Stop has begun.
func (e *h2Relay) isDraining() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining || e.stopped
}

// goAwayLocked tells the client that no stream after the last one taken
// will be served, and closes the connection when none is in flight (else
// the last one's end does). Sent twice, a GOAWAY says the same again.
func (c *h2conn) goAwayLocked() {
	if c.closed {
		return
	}
	c.goAway = true
	_ = c.fr.WriteGoAway(c.lastID, http2.ErrCodeNo, nil)
	if len(c.streams) == 0 {
		c.closeLocked()
	}
}

// closeListener sets the flag (draining or stopped) that keeps new
// connections out, stops accepting, and, once Serve's loop has ended,
// returns the connections open now.
func (e *h2Relay) closeListener(flag *bool) []*h2conn {
	e.mu.Lock()
	*flag = true
	if e.ln != nil {
		e.ln.Close()
	}
	e.mu.Unlock()
	e.acceptWG.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	conns := make([]*h2conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	return conns
}

// Stop closes every connection, ending the calls on them.
func (e *h2Relay) Stop() {
	for _, c := range e.closeListener(&e.stopped) {
		c.nc.Close()
		c.shutdown(errRelayStopped)
	}
	e.wg.Wait()
}

// onRequestHeaders opens a call (or ends a client's request stream).
func (c *h2conn) onRequestHeaders(f *h2hdrs) error {
	id := f.StreamID
	c.mu.Lock()
	if l := c.streams[id]; l != nil {
		// Trailers from the client: gRPC sends none, but a request may end
		// with a header block; it carries nothing the upstream needs.
		if l.recvEnd || !f.StreamEnded() {
			code := http2.ErrCodeProtocol
			if l.recvEnd {
				code = http2.ErrCodeStreamClosed
			}
			c.resetLocked(l, code)
			c.unlock()
			l.reset(code)
			return nil
		}
		c.recvEndLocked(l)
		c.unlock()
		if l.hs != nil {
			l.hs.onClientData(nil, true) // the trailers are not passed on
		} else {
			l.r.onClientData(l, nil, true)
		}
		return nil
	}
	if id%2 == 0 {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if id <= c.lastID {
		// A stream that is closed (RFC 9113 section 5.1): after our
		// RST_STREAM the client's HEADERS in flight (trailers) are
		// ignored; after the stream's end or the client's RST_STREAM
		// they are an error, as is a new stream with a lower id than one
		// used (section 5.1.1).
		known, weReset := c.closedHowLocked(id)
		c.unlock()
		switch {
		case known && weReset:
			return nil
		case known:
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		}
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.lastID = id
	if c.closed || c.goAway || len(c.streams) >= c.maxStreams {
		// Refused streams count for the rapid-reset bound, also after a
		// GOAWAY (either side's): the refusals must not pile up unread.
		if !c.closed && (!c.resetAllowedLocked() || c.floodedLocked()) {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
		}
		if !c.closed {
			_ = c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			// Its trailers, if the client sent them before it saw this,
			// are then ignored (closedHowLocked), not a connection error.
			c.noteClosedLocked(id, true)
		}
		c.unlock()
		return nil
	}
	st, ro, relay := c.relayRoute(f.Fields)
	if !relay {
		// An HTTP request (on a native_grpc listener, a plain HTTP/2
		// client's), or a gRPC call for a pool the relay cannot dial:
		// proxied through ServeHTTP, as net/http's server would.
		return c.openServeStream(f)
	}
	r := &relayCall{s: c.srv}
	d := &r.down
	*d = leg{c: c, id: id, r: r, down: true, sendWin: c.peerWin, recvAvail: h2StreamWindow}
	c.streams[id] = d
	if f.StreamEnded() {
		d.recvEnd = true
	}
	c.mu.Unlock()
	r.begin(f, st, ro)
	return nil
}
