package lb

import (
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// grpcConns is a pool's set of HTTP/2 (h2c) connections to its upstreams
// for the native gRPC engine, shared by all calls: per address, as many
// multiplexed connections as the upstream's MAX_CONCURRENT_STREAMS
// requires. A dead connection is dropped at once and the next call dials
// again, so a restarted upstream is used again as soon as it listens. The
// set is handed over on reload like the transport (see Pool.Provision)
// and closed when its pool is retired.
type grpcConns struct {
	mu     sync.Mutex
	addrs  map[string]*upAddr
	closed atomic.Bool
}

// upAddr holds the connections to one upstream address.
type upAddr struct {
	g           *grpcConns
	addr        string
	dialTimeout time.Duration
	keepalive   KeepaliveConfig

	mu      sync.Mutex
	conns   []*h2conn
	dialing chan struct{} // closed when the dial in flight ends
	dialErr error
	retired bool // a reload removed the upstream (keepOnly): no new streams or connections
}

// forAddr returns the connection set of addr; nil once the pool closed.
func (g *grpcConns) forAddr(addr string, dialTimeout time.Duration, ka KeepaliveConfig) *upAddr {
	if g.closed.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.addrs[addr]
	if a == nil {
		if dialTimeout <= 0 {
			dialTimeout = defaultDialTimeout
		}
		a = &upAddr{g: g, addr: addr, dialTimeout: dialTimeout, keepalive: ka}
		if g.addrs == nil {
			g.addrs = map[string]*upAddr{}
		}
		g.addrs[addr] = a
	}
	return a
}

// close sends GOAWAY on every connection and closes it; the pool's calls
// have ended by then (Pool.Close waits for them).
func (g *grpcConns) close() {
	g.closed.Store(true)
	g.keepOnly(nil)
}

// keepOnly retires the connections to addresses not in addrs: a reload
// that keeps the set dropped those upstreams (nil: all of them).
func (g *grpcConns) keepOnly(addrs []string) {
	g.mu.Lock()
	gone := takeOthers(g.addrs, addrs)
	g.mu.Unlock()
	for _, a := range gone {
		a.retire()
	}
}

// retire sends GOAWAY on the address's connections, each of which closes
// once its last call has ended.
func (a *upAddr) retire() {
	a.mu.Lock()
	a.retired = true
	conns := a.conns
	a.conns = nil
	a.mu.Unlock()
	for _, c := range conns {
		c.goAwayClose()
	}
}

// goAwayClose sends GOAWAY on an upstream connection, which closes once
// its last call has ended.
func (c *h2conn) goAwayClose() {
	c.mu.Lock()
	if !c.closed {
		c.goAway = true
		_ = c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		if len(c.streams) == 0 {
			c.closeLocked()
		}
	}
	c.unlock()
}

// open starts r's request on l on a connection with room for a stream.
func (a *upAddr) open(r *relayCall, l *leg) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.retired {
		return false
	}
	for _, c := range a.conns {
		if c.openStream(r, l) {
			return true
		}
	}
	return false
}

// takesNoStreams reports whether one of the connections was told by the
// upstream's SETTINGS, less than zeroStreamsRetry ago, to open no streams
// (MAX_CONCURRENT_STREAMS 0, which RFC 9113 allows for short spells): a
// connection dialled now would be told the same, and dialling one per
// call would pile them up. Such a connection told so longer ago, with no
// call on it, is let go, and the next call dials afresh: one try a
// second, should the upstream have meant that connection only.
func (a *upAddr) takesNoStreams() bool {
	var stale []*h2conn
	zero := false
	a.mu.Lock()
	keep := a.conns[:0]
	for _, c := range a.conns {
		c.mu.Lock()
		if c.peerMax == 0 && !c.closed && !c.goAway {
			if len(c.streams) == 0 && time.Since(c.zeroAt) > zeroStreamsRetry {
				stale = append(stale, c)
				c.mu.Unlock()
				continue
			}
			zero = true
		}
		c.mu.Unlock()
		keep = append(keep, c)
	}
	clear(a.conns[len(keep):])
	a.conns = keep
	a.mu.Unlock()
	for _, c := range stale {
		c.goAwayClose()
	}
	return zero
}

// zeroStreamsRetry is how long a connection whose upstream allows no
// streams keeps new connections from being dialled (takesNoStreams).
const zeroStreamsRetry = time.Second

var (
	errPoolClosed           = errors.New("upstream pool closed")
	errUpstreamClosedAtOnce = errors.New("upstream closed the new connection at once")
)

// dial adds a connection, or waits for the dial already in flight.
func (a *upAddr) dial(log *slog.Logger) error {
	a.mu.Lock()
	if ch := a.dialing; ch != nil {
		a.mu.Unlock()
		<-ch
		a.mu.Lock()
		err := a.dialErr
		a.mu.Unlock()
		return err
	}
	if a.retired {
		a.mu.Unlock()
		return errPoolClosed
	}
	ch := make(chan struct{})
	a.dialing = ch
	a.mu.Unlock()

	nc, err := net.DialTimeout("tcp", a.addr, a.dialTimeout)
	var c *h2conn
	if err == nil {
		c = newH2Conn(nc, false, log)
		c.onGone = a.remove
		// Closed after upstreamIdleTimeout without a stream (GOAWAY):
		// else an address no call picks any more (ejected, or removed
		// while a call of the old config raced the reload) keeps it
		// until the upstream closes it, which a gRPC server never does
		// by default.
		c.idleTimeout, c.idleSince = upstreamIdleTimeout, time.Now()
		c.idleTimer = time.AfterFunc(upstreamIdleTimeout, c.onIdleTimer)
		c.start(0)
		if a.keepalive.enabled() {
			c.startKeepalive(time.Duration(a.keepalive.Time), time.Duration(a.keepalive.Timeout))
		}
		go c.readLoop()
	}
	a.mu.Lock()
	if c != nil {
		c.mu.Lock()
		gone := c.shut // the peer closed at once: its onGone (remove) may have run already
		c.mu.Unlock()
		switch {
		case a.g.closed.Load() || a.retired:
			err = errPoolClosed
			c.nc.Close()
		case gone:
			err = errUpstreamClosedAtOnce
		default:
			a.conns = append(a.conns, c)
		}
	}
	a.dialErr = err
	a.dialing = nil
	close(ch)
	a.mu.Unlock()
	return err
}

// remove drops a connection that is gone or refuses new streams.
func (a *upAddr) remove(c *h2conn) {
	a.mu.Lock()
	if i := slices.Index(a.conns, c); i >= 0 {
		a.conns = slices.Delete(a.conns, i, i+1)
	}
	a.mu.Unlock()
}

// openStream opens a stream for r's request on c if c has room, sending
// the request headers: the client's, minus hop-by-hop ones, with the
// upstream as :authority and X-Request-Id and X-Forwarded-* set.
func (c *h2conn) openStream(r *relayCall, l *leg) bool {
	c.mu.Lock()
	if c.closed || c.goAway || len(c.streams) >= c.peerMax || c.nextID >= 1<<31-1 {
		c.mu.Unlock()
		return false
	}
	id := c.nextID
	c.nextID += 2
	*l = leg{c: c, id: id, r: r, src: &r.down, sendWin: c.peerWin, recvAvail: c.streamWindow}
	c.streams[id] = l
	for _, hf := range r.fields {
		switch hf.Name {
		case ":authority":
			hf.Value = r.u.Addr
		case "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host":
			continue
		default:
			if hopByHop(hf.Name) {
				continue
			}
		}
		c.writeFieldLocked(hf)
	}
	c.field("x-request-id", r.reqID, true)
	if r.xff != "" {
		c.field("x-forwarded-for", r.xff, false)
	}
	if r.host != "" {
		c.field("x-forwarded-host", r.host, false) // set, not kept (outboundHeader)
	}
	proto := r.fwdProto
	switch {
	case proto != "":
	case r.down.c.reqTemplate.TLS != nil || r.down.c.balancerTLS:
		proto = "https"
	default:
		proto = "http"
	}
	c.field("x-forwarded-proto", proto, false)
	end := r.reqEnd && len(r.unsent) == 0
	c.writeHeaderBlockLocked(id, end)
	if end {
		l.sentEnd = true
	}
	c.unlock()
	return true
}

// onResponseHeaders relays an upstream's response headers or trailers.
func (c *h2conn) onResponseHeaders(f *h2hdrs) error {
	c.mu.Lock()
	l := c.streams[f.StreamID]
	if l == nil {
		err := c.closedStreamErrLocked(f.StreamID) // nil: a stream we reset
		c.mu.Unlock()
		return err
	}
	if l.recvEnd {
		c.resetLocked(l, http2.ErrCodeStreamClosed)
		c.unlock()
		l.reset(http2.ErrCodeStreamClosed)
		return nil
	}
	if f.StreamEnded() {
		c.recvEndLocked(l)
	}
	c.unlock()
	l.r.onUpHeaders(l, f)
	return nil
}

var errKeepaliveTimeout = errors.New("upstream connection did not answer a keepalive ping")

// startKeepalive watches an upstream connection for silence: a tick
// every `every` looks whether any frame arrived since the last; if none
// did while calls are open, it sends a PING, and when nothing at all
// (the ACK or any other frame) arrives within timeout, the connection is
// declared dead and closed, failing its calls. Idle connections are not
// pinged: upstreams that enforce a ping policy count such pings against
// the client (grpc-go: PermitWithoutStream).
func (c *h2conn) startKeepalive(every, timeout time.Duration) {
	c.mu.Lock()
	c.kaTimer = time.AfterFunc(every, func() { c.keepaliveTick(every, timeout) })
	c.mu.Unlock()
}

func (c *h2conn) keepaliveTick(every, timeout time.Duration) {
	n := c.framesRead.Load()
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return
	}
	if c.kaPinged {
		c.kaPinged = false
		if n == c.kaSeen {
			c.mu.Unlock()
			c.log.Warn("lb: closing an upstream connection that did not answer a keepalive ping", "upstream", c.nc.RemoteAddr().String(), "timeout", timeout)
			c.nc.Close() // the writer may be stuck on the dead peer
			c.shutdown(errKeepaliveTimeout)
			return
		}
	}
	next := every
	if n == c.kaSeen && len(c.streams) > 0 && !c.closed {
		c.kaPinged, next = true, timeout
		_ = c.fr.WritePing(false, [8]byte{'v', 'i', 'g', 'i', 'l', 'k', 'a'})
	}
	c.kaSeen = n
	c.unlock()
	c.kaTimer.Reset(next)
}
