package lb

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// h1Server is the fast HTTP/1.x loop of one plain-TCP listener: one
// goroutine per connection reads request heads from a pooled buffer,
// parses the plain ones itself (h1server_parse.go) and runs the proxy on
// them with a lean request and response writer (h1server_writer.go). It
// spares each request net/http's server machinery (MIME parsing into
// textproto, a background read and its extra syscall after every
// request, per-request goroutine handoffs, sorted header writing), which
// cost more CPU than the proxying itself.
//
// A connection whose request is anything but plain (malformed, chunked,
// Expect, Upgrade, h2c, oversize…) is handed whole, with the bytes read
// so far, to the listener's net/http server, before any of that request
// is acted on; net/http then answers it as it always did and keeps the
// connection for its life.
type h1Server struct {
	s       *Server
	handler http.Handler  // s; tests run other handlers through the loop
	handoff *chanListener // net/http's listener
	h2      *h2Relay      // the listener's HTTP/2 engine (TLS listeners), else nil

	// Requests served here and connections handed to net/http.
	served, handedOff atomic.Uint64

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	bodyTimeout       time.Duration // body_read_timeout
	sendTimeout       time.Duration // send_timeout
	maxHead           int
	proxyProtocol     bool   // the listener's proxy_protocol (h1ConnCtx.noForwarded)
	forwardedProto    string // the listener's forwarded_proto (balancerTLS)
	// parkAfter: a keep-alive connection idle this long gives up its
	// goroutine (idleParker); 0 or not below idleTimeout: never.
	parkAfter time.Duration
	parked    atomic.Int64 // connections parked now

	ln       net.Listener // what start accepts from
	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*h1ServerConn]struct{}
	wg       sync.WaitGroup
	acceptWG sync.WaitGroup
}

// idleParkAfter: how long a keep-alive connection waits for its next
// request with a goroutine of its own before it is parked (idleParker).
// Long enough that connections in steady use (a request every few
// hundred ms) never park: parking and taking up again costs a timer, two
// epoll_ctl calls and a goroutine start.
var idleParkAfter = 2 * time.Second

// h1BufSize is a connection's read buffer: heads that do not fit (rare:
// huge cookies) go to net/http.
const h1BufSize = 8 << 10

// watchDelay: a request that has run this long gets a reader on its
// client connection that notices the client going away (and cancels the
// request, so the upstream exchange is abandoned). Short requests, the
// bulk, never pay for that read and its syscall.
const watchDelay = 100 * time.Millisecond

var errClientGone = errors.New("client closed the connection")

var h1BufPool = sync.Pool{New: func() any { b := make([]byte, h1BufSize); return &b }}

var h1WriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

func (s *Server) newH1Server(l *listener, handoff *chanListener) *h1Server {
	return &h1Server{
		s:                 s,
		handler:           s,
		handoff:           handoff,
		h2:                l.h2,
		readHeaderTimeout: time.Duration(l.cfg.ReadHeaderTimeout),
		idleTimeout:       time.Duration(l.cfg.IdleTimeout),
		bodyTimeout:       time.Duration(l.cfg.BodyReadTimeout),
		sendTimeout:       time.Duration(l.cfg.SendTimeout),
		maxHead:           min(h1BufSize, int(l.cfg.MaxHeaderBytes)),
		proxyProtocol:     l.cfg.ProxyProtocol,
		forwardedProto:    l.cfg.ForwardedProto,
		parkAfter:         idleParkAfter,
		conns:             map[*h1ServerConn]struct{}{},
	}
}

// start accepts from ln, and serves what it accepts, until shutdown.
func (hs *h1Server) start(ln net.Listener) {
	hs.ln = ln
	hs.acceptWG.Add(1)
	go hs.serve()
}

func (hs *h1Server) serve() {
	defer hs.acceptWG.Done()
	for {
		nc, err := acceptRetrying(hs.ln, hs.s.log)
		if err != nil {
			return
		}
		c := hs.newConn(nc)
		if c == nil {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// shutdown closes the fast loop's listener and drains it: idle
// connections close at once, busy ones after their current answer (sent
// with Connection: close). When ctx ends first, the rest are closed and
// their requests cancelled.
func (hs *h1Server) shutdown(ctx context.Context) error {
	// The accept loop ends first: a connection it took (the sniffer's
	// hand-offs, which come until it closes the listener, carry a request
	// begun) must not be refused as the drain's.
	hs.ln.Close()
	accepted := make(chan struct{})
	go func() { hs.acceptWG.Wait(); close(accepted) }()
	select {
	case <-accepted:
	case <-ctx.Done():
	}
	hs.mu.Lock()
	hs.draining.Store(true) // under mu: newConn adds no connection after this
	hs.mu.Unlock()
	for _, c := range hs.connList() {
		c.closeIfIdle()
	}
	done := make(chan struct{})
	go func() { hs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		hs.closeAll()
		return ctx.Err()
	}
}

// connList is the connections the server holds now.
func (hs *h1Server) connList() []*h1ServerConn {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return slices.Collect(maps.Keys(hs.conns))
}

// closeAll closes every connection, busy or not.
func (hs *h1Server) closeAll() {
	for _, c := range hs.connList() {
		if !c.closeIfParked() {
			c.abort(context.Canceled)
			c.nc.Close()
		}
	}
}

func (hs *h1Server) newConn(nc net.Conn) *h1ServerConn {
	c := &h1ServerConn{hs: hs, nc: nc, accepted: time.Now()}
	if pc, ok := nc.(*prefixConn); ok {
		// From the protocol sniffer: take its bytes (at most 4 KiB, less
		// than the buffer) into our buffer. Otherwise the first read takes
		// one (readHead).
		c.nc = pc.Conn
		c.ensureBuf()
		c.w = copy(c.buf, pc.prefix)
	}
	c.nw.init(c.nc)
	c.nw.refill = c.refillBuf
	hs.mu.Lock()
	if hs.draining.Load() {
		hs.mu.Unlock()
		c.release()
		return nil
	}
	hs.conns[c] = struct{}{}
	hs.wg.Add(1)
	hs.mu.Unlock()
	return c
}

func (hs *h1Server) forget(c *h1ServerConn) {
	hs.mu.Lock()
	delete(hs.conns, c)
	hs.mu.Unlock()
	hs.wg.Done()
}

// Connection states, for the drain.
const (
	connActive int32 = iota // reading a request or running one
	connIdle                // waiting for a request's first byte
	connClosed              // closed by the drain (or, parked, by its timer)
	connParked              // idle without a goroutine (idleParker)
)

// h1ServerConn is one client connection of the fast loop.
type h1ServerConn struct {
	hs       *h1Server
	nc       net.Conn
	nw       noWaitReader
	stamps   connStamps // -tags lbstamps only (stamps_on.go)
	accepted time.Time
	remote   string

	// The read buffer and the answer writer come from pools and go back
	// to them while the connection waits idle (releaseIdle): an idle
	// keep-alive connection then holds neither.
	bufp        *[]byte
	buf         []byte // read buffer; buf[r:w] is unread input
	r, w        int
	bw          *bufio.Writer
	cw          io.Writer // what bw writes to
	deadlineSet bool
	// idleDeadline is the idle deadline left armed (see beforeWait);
	// zero when the armed one, if any, is read_header_timeout's.
	idleDeadline time.Time
	lingerClose  bool // closing with request bytes unread

	// readHead's state for beforeWait (made once: beforeWaitFn).
	beforeWaitFn func() bool
	rdFirst      bool
	rdIdle       bool
	rdHeadStart  time.Time
	idleSince    time.Time // when the current idle wait began

	// Parking (see park). parkID and parkAdded are the parker's; parkGen
	// and parkTimer change under mu.
	parkable  bool // parks once idle parkAfter: a descriptor, a parker, parkAfter < idleTimeout
	parkID    uint64
	parkAdded bool
	parkGen   uint64
	parkTimer *time.Timer

	// Storage reused from one request to the next: the request with its
	// URL, and the proxy's exchange when the last request left it
	// (takeExchange).
	reqStore struct {
		req http.Request
		url url.URL
	}
	px        *proxyExchange
	reqHeader http.Header // the last request's header map, to fill again
	headStore []byte      // the request head's storage (headString)
	reqHead   requestHead // the request's head, for relaying its lines upstream

	ctx    *h1ConnCtx
	cancel context.CancelCauseFunc // use abort, which also runs the hook
	tmpl   *http.Request           // carries ctx; each request is a copy
	rw     h1ResponseWriter
	state  atomic.Int32
	mu     sync.Mutex // guards ctx and cancel, which closeAll may use early

	// The client watch of a long request (see watchDelay).
	watch      *time.Timer
	wmu        sync.Mutex
	reqSeq     uint64 // requests begun
	armedSeq   uint64 // the request the pending timer is for
	watchArmed bool   // the timer is pending
	handling   bool   // a handler is running
	bodyDone   bool   // its request body is read to the end (or it has none)
	watching   bool
	watchAbort bool
	watchN     int
	watchBuf   [1]byte
	watchDone  chan struct{}
}

// release gives the connection's buffers back to their pools when it
// ends.
func (c *h1ServerConn) release() {
	c.putBuf()
	c.putWriter()
}

// putBuf gives the read buffer back.
func (c *h1ServerConn) putBuf() {
	if c.bufp != nil {
		h1BufPool.Put(c.bufp)
		c.bufp, c.buf = nil, nil
	}
}

// putWriter gives the answer writer and the ResponseWriter's body buffer
// back.
func (c *h1ServerConn) putWriter() {
	if c.bw != nil {
		c.bw.Reset(nil)
		h1WriterPool.Put(c.bw)
		c.bw = nil
	}
	if c.rw.pendingBuf != nil {
		h1PendingPool.Put(c.rw.pendingBuf)
		c.rw.pendingBuf, c.rw.pending = nil, nil
	}
}

// ensureBuf takes a read buffer when the connection has none.
func (c *h1ServerConn) ensureBuf() {
	if c.bufp == nil {
		bp := h1BufPool.Get().(*[]byte)
		c.bufp, c.buf = bp, *bp
	}
}

// ensureWriter takes an answer writer (and the buffer its
// ResponseWriter holds a short answer's body in) when the connection has
// none.
func (c *h1ServerConn) ensureWriter() {
	if c.bw == nil {
		c.bw = h1WriterPool.Get().(*bufio.Writer)
		c.bw.Reset(c.cw)
	}
	if c.rw.pendingBuf == nil {
		c.rw.pendingBuf = h1PendingPool.Get().(*[h1PendingSize]byte)
	}
}

// refillBuf is the read buffer for the read after an idle wait.
func (c *h1ServerConn) refillBuf() []byte {
	c.ensureBuf()
	return c.buf[c.w:c.hs.maxHead]
}

// releaseIdle gives the read buffer, the answer writer and the body
// buffer back to their pools while the connection waits for a request
// with nothing buffered either way: 14 KiB of the 25 KiB an idle
// keep-alive connection held. The read after the wait takes a buffer
// again (noWaitReader.refill), the next request a writer (ensureWriter).
func (c *h1ServerConn) releaseIdle() {
	if c.r == c.w {
		c.putBuf()
		c.r, c.w = 0, 0
		c.nw.p = nil
	}
	if c.bw == nil || c.bw.Buffered() == 0 {
		c.putWriter()
	}
}

func (c *h1ServerConn) closeIfIdle() {
	if c.state.CompareAndSwap(connIdle, connClosed) {
		c.nc.Close()
		return
	}
	c.closeIfParked()
}

func (c *h1ServerConn) serve() {
	c.remote = c.nc.RemoteAddr().String()
	var tlsState *tls.ConnectionState
	if tc, ok := c.nc.(*tls.Conn); ok {
		st, handedOff := c.handshake(tc)
		if st == nil {
			c.end(handedOff)
			return
		}
		tlsState = st
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c.mu.Lock()
	c.ctx, c.cancel = &h1ConnCtx{Context: ctx, noForwarded: c.hs.proxyProtocol,
		balancerTLS: balancerTLS(c.hs.forwardedProto, c.nc)}, cancel
	c.mu.Unlock()
	c.tmpl = (&http.Request{RemoteAddr: c.remote, TLS: tlsState}).WithContext(c.ctx)
	c.cw = newSendWriter(c.nc, c.hs.sendTimeout) // bw, taken with the first request, writes to it
	c.watch = time.AfterFunc(time.Hour, c.startWatch)
	c.watch.Stop()
	c.rw.c = c
	c.rw.header = make(http.Header, 8)
	c.beforeWaitFn = c.beforeWait
	hs := c.hs
	c.parkable = hs.parkAfter > 0 && hs.parkAfter < hs.idleTimeout && idleParkerOf().accepts(c)
	c.stamps.init(c.nc)
	c.run(true)
}

// handshake completes a TLS connection's handshake within
// read_header_timeout, as net/http does. The fast loop serves HTTP/1.1
// only: a client that negotiated HTTP/2 goes with the connection as it is
// (handedOff) to the listener's HTTP/2 engine, which every TLS listener
// has (New; h2serve.go).
func (c *h1ServerConn) handshake(tc *tls.Conn) (st *tls.ConnectionState, handedOff bool) {
	if t := c.hs.readHeaderTimeout; t > 0 {
		tc.SetDeadline(c.accepted.Add(t))
	}
	if err := tc.Handshake(); err != nil {
		c.hs.s.log.Debug("lb TLS handshake failed", "remote", c.remote, "err", err)
		return nil, false
	}
	tc.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == "h2" {
		if !c.hs.h2.adopt(tc, &state) {
			refuseH2(tc) // draining
		}
		return nil, true
	}
	return &state, false
}

// run serves requests until the connection closes, goes to net/http or
// parks; a parked connection's next request starts it again (unpark).
func (c *h1ServerConn) run(first bool) {
	handedOff, parked := false, false
	defer func() {
		if p := recover(); p != nil {
			c.hs.s.log.Error("lb connection panicked", "remote", c.remote, "panic", p, "stack", string(debug.Stack()))
		}
		if !parked { // else the parker, its timer or the drain carries on
			c.end(handedOff)
		}
	}()
	for {
		n, res := c.readHead(first)
		switch res {
		case headClosed:
			return
		case headHandOff:
			handedOff = true
			c.handOff()
			return
		case headParked:
			parked = true
			return
		}
		// The request and its URL live in the connection, reused from one
		// request to the next: nothing holds them once a request is done
		// (the proxy copies what it sends upstream).
		r := &c.reqStore
		r.req, r.url = *c.tmpl, url.URL{}
		if h := c.reqHeader; h != nil {
			c.reqHeader = nil
			clear(h)
			r.req.Header = h // parseH1Head fills it
		}
		req := &r.req
		if !parseH1Head(c.headString(n), req, &r.url, &c.reqHead) {
			handedOff = true
			c.handOff()
			return
		}
		if c.reqHead.relayable {
			c.ctx.reqHead = &c.reqHead
		}
		c.r += n
		c.stamps.headRead(c.ctx, first)
		if !c.serveRequest(req) {
			return
		}
		c.stamps.answered(c.ctx, first)
		first = false
	}
}

// headString copies the head in buf[r:r+n] into the connection's head
// storage and returns it as the string every string of the parsed request
// is a substring of. The storage is reused when the last request left
// its own for reuse (recycle: then nothing can hold any of it, its
// strings included; the header map and the exchange that held them are
// cleared); otherwise, or when too small, a new one is made, and the old
// one is left to whatever may still hold it. A browser's request head is
// about 500 bytes: without this, most of what each request allocated.
func (c *h1ServerConn) headString(n int) string {
	if c.px == nil || cap(c.headStore) < n {
		c.headStore = make([]byte, max(n, 512))
	}
	b := c.headStore[:n]
	copy(b, c.buf[c.r:c.r+n])
	return unsafe.String(&b[0], n)
}

type headResult int

const (
	headReady headResult = iota
	headHandOff
	headClosed
	headParked // the connection waits in the idle parker, without this goroutine
)

// readHead reads until buf[r:] holds a complete head, returning its
// length. A connection that sends nothing within idle_timeout (the first
// request: read_header_timeout), or does not complete a head within
// read_header_timeout, is closed, as net/http does.
func (c *h1ServerConn) readHead(first bool) (int, headResult) {
	var headStart time.Time
	if first {
		headStart = c.accepted
	}
	for {
		if c.w > c.r {
			switch n := scanH1Head(c.buf[c.r:c.w]); {
			case n > 0:
				if c.deadlineSet && c.idleDeadline.IsZero() {
					c.clearDeadline()
				}
				return n, headReady
			case n < 0 || c.w-c.r >= c.hs.maxHead:
				return 0, headHandOff
			}
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
		} else if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		c.ensureBuf()
		dst := c.buf[c.w:c.hs.maxHead]
		if c.w == 0 && !first {
			// The answer just left; the client cannot have sent its next
			// request yet. Letting the other connections run first makes
			// the read below usually find it, instead of failing with
			// EAGAIN and parking in the poller.
			runtime.Gosched()
		}
		c.rdFirst, c.rdHeadStart = first, headStart
		n, waited, stopped, ok, err := c.nw.readWait(dst, c.beforeWaitFn)
		if !ok {
			waited = true
			if stopped = !c.beforeWait(); !stopped {
				n, err = c.nc.Read(c.refillBuf()) // beforeWait may have taken dst
			}
		}
		headStart = c.rdHeadStart
		if waited {
			c.stamps.waited()
		}
		if !waited && err != nil && !c.idleDeadline.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
			// The idle deadline left armed through the last request (see
			// beforeWait) passed meanwhile: it is not this read's.
			c.clearDeadline()
			continue
		}
		if stopped {
			return 0, headClosed // draining
		}
		if waited {
			idle := c.rdIdle
			if idle && !first && n == 0 && c.parkable && errors.Is(err, os.ErrDeadlineExceeded) {
				// parkAfter passed: idle_timeout has not, unless the
				// deadline lagged (see beforeWait).
				if rest := c.hs.idleTimeout - time.Since(c.idleSince); rest > 0 {
					return 0, c.park(rest)
				}
			}
			if idle && !c.state.CompareAndSwap(connIdle, connActive) {
				return 0, headClosed // closed by the drain
			}
			if idle && !first && n > 0 {
				headStart = time.Now()
			}
		}
		c.w += n
		if err != nil {
			if err == io.EOF && c.w > c.r {
				// A head cut short: net/http answers 400.
				return 0, headHandOff
			}
			return 0, headClosed
		}
	}
}

// park hands the idle connection to the idle parker, with a timer that
// closes it when rest (the rest of idle_timeout) passes, and reports
// headParked: the calling goroutine then ends and must not touch c. It
// reports headClosed when the drain closed c first, or the parker cannot
// take it (c then closes, as at idle_timeout). Whoever moves c out of
// connParked owns it: unpark, parkExpired or closeIfParked, each under
// mu, which park holds until c is in the parker.
func (c *h1ServerConn) park(rest time.Duration) headResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.state.CompareAndSwap(connIdle, connParked) {
		return headClosed // closed by the drain
	}
	c.clearDeadline() // passed: the read after unpark must not see it
	c.releaseIdle()
	// The storage kept for the next request (recycle) is worth keeping
	// for a connection in steady use, not one idle this long.
	c.px, c.reqHeader, c.ctx.answer, c.headStore = nil, nil, nil, nil
	c.parkGen++
	gen := c.parkGen
	c.parkTimer = time.AfterFunc(rest, func() { c.parkExpired(gen) })
	c.hs.parked.Add(1)
	if !idleParkerOf().add(c) {
		c.state.Store(connActive)
		c.parkTimer.Stop()
		c.hs.parked.Add(-1)
		return headClosed
	}
	return headParked
}

// unpark takes c up again when its next request (or its close) arrived:
// the parker calls it.
func (c *h1ServerConn) unpark() {
	if c.leavePark(connActive) {
		c.hs.parked.Add(-1)
		go c.run(false)
	}
}

// leavePark moves c from parked to state, stopping its timer, and
// reports whether it was parked: the caller then owns c.
func (c *h1ServerConn) leavePark(state int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.state.CompareAndSwap(connParked, state) {
		return false
	}
	c.parkTimer.Stop()
	return true
}

// parkExpired closes c when idle_timeout passed while parked (gen: the
// park the timer was set for).
func (c *h1ServerConn) parkExpired(gen uint64) {
	c.mu.Lock()
	ok := c.parkGen == gen && c.state.CompareAndSwap(connParked, connClosed)
	c.mu.Unlock()
	if ok {
		c.finishParked()
	}
}

// closeIfParked closes c if it is parked (the drain, closeAll) and
// reports whether it was.
func (c *h1ServerConn) closeIfParked() bool {
	if !c.leavePark(connClosed) {
		return false
	}
	c.finishParked()
	return true
}

// finishParked ends a parked connection that was closed, as run's end
// would have.
func (c *h1ServerConn) finishParked() {
	idleParkerOf().remove(c)
	c.hs.parked.Add(-1)
	c.end(false)
}

// end closes the connection (unless net/http has it now) and gives back
// what it holds: the end of run, and of a parked connection.
func (c *h1ServerConn) end(handedOff bool) {
	c.stopWatch()
	if c.watch != nil {
		c.watch.Stop()
	}
	if c.cancel != nil {
		c.abort(context.Canceled)
		c.ctx.stopClock()
	}
	if !handedOff {
		if c.lingerClose {
			// Unread request bytes would turn a plain close into a
			// reset that may destroy the answer in flight: half-close
			// and give the client time to read it, as net/http does.
			if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
				time.Sleep(500 * time.Millisecond)
			}
		}
		c.nc.Close()
	}
	c.release()
	c.hs.forget(c)
}

// abort cancels the connection's context (and so the request running on
// it), and runs the abort its upstream wait registered.
func (c *h1ServerConn) abort(cause error) {
	c.mu.Lock()
	cancel, ctx := c.cancel, c.ctx
	c.mu.Unlock()
	if cancel == nil {
		return // not serving yet
	}
	cancel(cause)
	ctx.fire()
}

// h1ConnCtx is a fast-loop connection's context. The upstream transport
// makes a blocking wait cancellable through it (setAbort/clearAbort)
// instead of context.AfterFunc, whose registration costs about a
// microsecond and several allocations, nearly every request. Only a
// request whose context is this one can use it: one the h1Transport's own
// path carries, whose time-outs run on the context's clock (reqClock);
// the rest register with context.AfterFunc as before.
type h1ConnCtx struct {
	context.Context
	stamps ctxStamps // -tags lbstamps only (stamps_on.go)
	mu     sync.Mutex
	fn     func() // the registered abort, until it runs or is cleared
	fired  bool   // the last registered abort ran
	clock  reqClock
	// onExpire, when set, runs when a deadline of the clock passes, after
	// the registered abort: it ends a wait that is not the upstream's, a
	// request body's for its HTTP/2 client (h2ReqBody).
	onExpire func()

	// Storage for upstream answers (borrowAnswer): answer is the one the
	// last request gave back (recycle), lent the one the current request
	// borrowed. Only the goroutine serving the connection touches them.
	answer, lent *h1Response
	// reqHead: the running request's head, when its field lines may be
	// relayed upstream as they came (writeRequestHead). Only the goroutine
	// serving the connection touches it.
	reqHead *requestHead
	// noForwarded: the connection came through a PROXY protocol header
	// (proxy_protocol), so no X-Forwarded-* field on it is believed,
	// whatever trusted_proxies says (forwardedTrusted).
	noForwarded bool
	// balancerTLS: a layer-4 balancer in front terminated the client's
	// TLS (balancerTLS), so its requests were https (clientTLS).
	balancerTLS bool
}

// setOnExpire sets (or, nil, clears) onExpire.
func (x *h1ConnCtx) setOnExpire(fn func()) {
	x.mu.Lock()
	x.onExpire = fn
	x.mu.Unlock()
}

// setAbort registers fn to run when the context ends (at once, when it
// already has). It reports false, registering nothing, when another
// abort is registered: the caller then uses context.AfterFunc.
func (x *h1ConnCtx) setAbort(fn func()) bool {
	x.mu.Lock()
	if x.fn != nil {
		x.mu.Unlock()
		return false
	}
	x.fired = false
	if x.Err() != nil || x.clock.expired != nil {
		// abort cancels before it looks for fn, and the clock records
		// why before it does: ended already.
		x.fired = true
		x.mu.Unlock()
		fn()
		return true
	}
	x.fn = fn
	x.mu.Unlock()
	return true
}

// clearAbort unregisters the abort; like AfterFunc's stop, it reports
// whether the abort was kept from running.
func (x *h1ConnCtx) clearAbort() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.fn != nil {
		x.fn = nil
		return true
	}
	return !x.fired
}

// connCtxKey finds a fast-loop request's h1ConnCtx through the contexts
// derived from it (a route's timeout, an attempt's try_timeout), for what
// belongs to the request rather than to the context: its head (reqHead).
type connCtxKey struct{}

func (x *h1ConnCtx) Value(key any) any {
	if key == (connCtxKey{}) {
		return x
	}
	return x.Context.Value(key)
}

// connCtxOf returns the h1ConnCtx ctx is or derives from, or nil.
func connCtxOf(ctx context.Context) *h1ConnCtx {
	if x, ok := ctx.(*h1ConnCtx); ok {
		return x
	}
	x, _ := ctx.Value(connCtxKey{}).(*h1ConnCtx)
	return x
}

func (x *h1ConnCtx) fire() {
	x.mu.Lock()
	fn := x.takeAbort()
	x.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// takeAbort takes the registered abort, if any, for the caller to run
// once it released x.mu; it counts as run (clearAbort). x.mu held.
func (x *h1ConnCtx) takeAbort() func() {
	fn := x.fn
	if fn != nil {
		x.fn, x.fired = nil, true
	}
	return fn
}

// beforeWait runs when readHead's read finds nothing yet, before it
// waits: the connection is idle for the drain when no request has begun,
// and the wait gets its deadline (idle_timeout between requests, else
// read_header_timeout from the head's start). false: draining, do not
// wait.
func (c *h1ServerConn) beforeWait() bool {
	idle := c.w == 0
	c.rdIdle = idle
	now := time.Now()
	if idle {
		c.releaseIdle() // before the state says idle (tests look)
		c.state.Store(connIdle)
		if c.hs.draining.Load() {
			if !c.rdFirst {
				return false
			}
			// A connection's first request, awaited once the drain has
			// begun (a TLS handshake it met, a goroutine late to start):
			// it gets sniffDrainGrace, as the sniffer's do, rather than
			// a close that could cut one on its way.
			if c.rdHeadStart.IsZero() {
				c.rdHeadStart = now
			}
			d := now.Add(sniffDrainGrace)
			if t := c.rdHeadStart.Add(c.hs.readHeaderTimeout); c.hs.readHeaderTimeout > 0 && t.Before(d) {
				d = t
			}
			c.nc.SetReadDeadline(d)
			c.idleDeadline, c.deadlineSet = time.Time{}, true
			return true
		}
	}
	if idle && !c.rdFirst {
		// Moving a deadline costs a timer update, and clearing it once the
		// head is in costs another: two per keep-alive request. So the
		// idle deadline stays armed through the request (reads of a body
		// or by the client watch clear it first), and is moved only once
		// it lags the wanted one by idleSlack: a connection may close that
		// much before idle_timeout.
		c.idleSince = now
		wait := c.hs.idleTimeout
		if c.parkable {
			wait = c.hs.parkAfter
		}
		want := now.Add(wait)
		if c.deadlineSet && !c.idleDeadline.IsZero() && want.Sub(c.idleDeadline) < idleSlack(wait) {
			return true
		}
		c.nc.SetReadDeadline(want)
		c.idleDeadline = want
	} else {
		if c.rdHeadStart.IsZero() {
			c.rdHeadStart = now
		}
		c.nc.SetReadDeadline(c.rdHeadStart.Add(c.hs.readHeaderTimeout))
		c.idleDeadline = time.Time{}
	}
	c.deadlineSet = true
	return true
}

// idleSlack is how far an armed idle deadline may lag behind the wanted
// one before it is moved: an eighth of idle_timeout, at most a second.
func idleSlack(idle time.Duration) time.Duration {
	return min(idle/8, time.Second)
}

// clearDeadline removes the read deadline.
func (c *h1ServerConn) clearDeadline() {
	c.nc.SetReadDeadline(time.Time{})
	c.deadlineSet = false
	c.idleDeadline = time.Time{}
}

// handOff passes the connection, with its unread bytes, to net/http.
func (c *h1ServerConn) handOff() {
	c.hs.handedOff.Add(1)
	if c.bw != nil {
		c.bw.Flush()
	}
	if c.deadlineSet {
		c.clearDeadline()
	}
	if dw, ok := c.cw.(*deadlineWriter); ok {
		// Its send_timeout deadline stays set after an answer (it is
		// moved only as writes need): net/http, which sets none, would
		// fail its first write once it passed.
		dw.clear()
	}
	prefix := append([]byte(nil), c.buf[c.r:c.w]...)
	c.hs.handoff.push(&prefixConn{Conn: c.nc, prefix: prefix})
}

// serveRequest runs one request and reports whether the connection may
// carry another.
func (c *h1ServerConn) serveRequest(req *http.Request) (keep bool) {
	c.ensureWriter()
	var body *h1ReqBody
	if req.ContentLength > 0 {
		if c.deadlineSet {
			c.clearDeadline() // the idle one: the body's reads wait freely
		}
		body = &h1ReqBody{c: c, remain: req.ContentLength, idle: c.hs.bodyTimeout}
		req.Body = body
		c.ctx.setOnExpire(body.expire) // the clock's time-outs end its waits
	} else {
		req.Body = http.NoBody
	}
	c.hs.served.Add(1)
	w := &c.rw
	w.reset(req, body)
	c.armWatch(body == nil)
	if body != nil {
		body.seq = c.reqSeq // the request armWatch just counted
	}
	aborted := true
	defer func() {
		c.ctx.reqHead, c.reqHead = nil, requestHead{} // pins no head once done
		if body != nil {
			c.ctx.setOnExpire(nil)
		}
		c.stopWatch()
		if aborted {
			// A panic: http.ErrAbortHandler (an upstream broke off
			// mid-body) or a bug. Send what is buffered, as net/http
			// does, and close; the client sees a truncated answer.
			p := recover()
			if p != nil && p != http.ErrAbortHandler {
				c.hs.s.log.Error("lb request panicked", "remote", c.remote, "panic", p, "stack", string(debug.Stack()))
			}
			c.bw.Flush()
			keep = false
			if body != nil {
				// As after a handler that returns: a transport still
				// sending the body upstream on its own goroutine must not
				// read the connection's buffer once it is back in the pool.
				body.finish()
			}
		}
	}()
	c.hs.handler.ServeHTTP(w, req)
	aborted = false
	c.stopWatch()
	keep = w.finish()
	if body != nil {
		if !body.finish() || body.expired.Load() {
			keep = false
			c.lingerClose = true
		}
	}
	if c.ctx.Err() != nil {
		keep = false
	}
	if c.bw.Flush() != nil {
		keep = false
	}
	return keep
}

// armWatch schedules the client watch of the request about to run. The
// timer is armed only when none is pending, and nothing stops it when
// the request ends: when it fires during a later request than the one it
// was armed for, it arms itself again for that one (startWatch). A busy
// connection's timer thus fires once per watchDelay instead of costing
// two timer updates per request (1.7 % of the CPU under load); a long
// request's watch starts between watchDelay and twice that in.
func (c *h1ServerConn) armWatch(bodyDone bool) {
	c.wmu.Lock()
	c.handling, c.bodyDone = true, bodyDone
	c.reqSeq++
	arm := !c.watchArmed
	if arm {
		c.watchArmed, c.armedSeq = true, c.reqSeq
	}
	c.wmu.Unlock()
	if arm {
		c.watch.Reset(watchDelay)
	}
}

// startWatch runs on the timer's goroutine: it reads from the client
// until a byte arrives (the next pipelined request: kept for the loop),
// the client goes away (the request is cancelled) or stopWatch ends it.
// It waits while the request body is still being read, which owns the
// connection's input until then.
func (c *h1ServerConn) startWatch() {
	c.wmu.Lock()
	c.watchArmed = false
	if !c.handling || c.watching {
		c.wmu.Unlock()
		return
	}
	if c.reqSeq != c.armedSeq || !c.bodyDone {
		// A later request than the one the timer was armed for (it has
		// run less than watchDelay), or its body is still being read:
		// look again later.
		// Reset under wmu: the connection's end (stopWatch, then Stop)
		// then comes wholly before it, and sees handling false, or after,
		// and stops the timer.
		c.watchArmed, c.armedSeq = true, c.reqSeq
		c.watch.Reset(watchDelay)
		c.wmu.Unlock()
		return
	}
	if c.r == 0 && c.w == len(c.buf) {
		// No room for the byte it may read: the client, with a full
		// buffer of pipelined requests, is evidently there anyway.
		c.wmu.Unlock()
		return
	}
	// An idle deadline may still be armed (see beforeWait). Cleared here,
	// under wmu before watching is set, so that stopWatch's own deadline
	// (which ends this read) always comes after it.
	c.nc.SetReadDeadline(time.Time{})
	c.watching = true
	done := make(chan struct{})
	c.watchDone = done
	c.wmu.Unlock()
	n, err := c.nc.Read(c.watchBuf[:])
	c.wmu.Lock()
	c.watchN = n
	aborted := c.watchAbort
	c.wmu.Unlock()
	if n == 0 && err != nil && !aborted {
		c.abort(errClientGone)
	}
	close(done)
}

// stopWatch ends the watch of the request that just finished; a byte it
// read goes back into the input.
func (c *h1ServerConn) stopWatch() {
	if c.watch == nil {
		return
	}
	c.wmu.Lock()
	c.handling = false
	watching := c.watching
	c.watchAbort = watching
	c.wmu.Unlock()
	if !watching {
		return
	}
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.wmu.Lock()
	done := c.watchDone
	c.wmu.Unlock()
	<-done
	c.clearDeadline()
	if c.watchN > 0 && c.buf != nil {
		if c.w == len(c.buf) {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		c.buf[c.w] = c.watchBuf[0]
		c.w++
	}
	c.wmu.Lock()
	c.watching, c.watchAbort, c.watchN = false, false, 0
	c.wmu.Unlock()
}

// h1ReqBody is a request body of known length, read from the
// connection's buffer and then the connection. The mutex serialises the
// reads of the transport (which may still be sending it upstream on its
// own goroutine when the handler returns) with the loop's final drain.
type h1ReqBody struct {
	c      *h1ServerConn
	mu     sync.Mutex
	remain int64
	closed bool
	err    error
	// expired: the request's time-out passed while the body was not yet
	// read to its end; a read waiting for the client was ended (expire).
	expired atomic.Bool
	idle    time.Duration // body_read_timeout: how long one read may wait
	seq     uint64        // the connection's reqSeq of its request
}

// expire ends a read waiting for the client's body, and any later one:
// the request's time-out passed. The connection's read deadline is set
// in the past, which is why only a body not read to its end is expired:
// such a connection carries no other request.
func (b *h1ReqBody) expire() {
	c := b.c
	c.wmu.Lock()
	// A clock's hook may run late, once the connection went on to its
	// next request: that one's body is not this one's to expire.
	done := c.bodyDone || c.reqSeq != b.seq
	c.wmu.Unlock()
	if !done && b.expired.CompareAndSwap(false, true) {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

func (b *h1ReqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readLocked(p)
}

// readConn reads the body from the connection, waiting b.idle at most.
func (b *h1ReqBody) readConn(p []byte) (int, error) {
	c := b.c
	if b.idle <= 0 || b.expired.Load() {
		return c.nc.Read(p)
	}
	c.nc.SetReadDeadline(time.Now().Add(b.idle))
	if b.expired.Load() {
		c.nc.SetReadDeadline(time.Unix(1, 0)) // expire ran meanwhile
	}
	n, err := c.nc.Read(p)
	switch {
	case b.expired.Load():
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = errBodyIdle
	default:
		c.nc.SetReadDeadline(time.Time{})
		if b.expired.Load() {
			// expire ran since the check above: its deadline must stand
			// for the next read, which sets none of its own.
			c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
	return n, err
}

// buffered is how much of the body a Read returns without waiting for
// the client: what the connection's buffer holds of it.
func (b *h1ReqBody) buffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return 0
	}
	return int(min(b.remain, int64(b.c.w-b.c.r)))
}

func (b *h1ReqBody) readLocked(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	c := b.c
	var n int
	var err error
	if c.w > c.r {
		n = copy(p, c.buf[c.r:c.w])
		c.r += n
	} else {
		n, err = b.readConn(p)
	}
	b.remain -= int64(n)
	if b.remain == 0 {
		c.wmu.Lock()
		c.bodyDone = true
		c.wmu.Unlock()
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && b.expired.Load() {
		err = errBodyWaitExpired
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close ends the body for the handler; unread bytes then keep the
// connection from carrying another request.
func (b *h1ReqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// discardRest reads up to limit more bytes of the body, as net/http does
// before answering, so that a client that writes its whole request
// before reading is not stuck. It reports whether the body is now done
// or, with onlyCheck, whether it could be: the body may still be in use
// (an early answer's head while the upload still goes upstream), and is
// read at the handler's end instead.
func (b *h1ReqBody) discardRest(limit int64, onlyCheck bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.remain == 0 && b.err == nil {
		return true
	}
	if b.closed || b.err != nil || b.remain >= limit {
		return false
	}
	if onlyCheck {
		return true
	}
	var buf [4096]byte
	for b.remain > 0 {
		if _, err := b.readLocked(buf[:]); err != nil && err != io.EOF {
			return false
		}
	}
	return true
}

// finish closes the body after the handler; it reports whether the body
// was read to its end, so that the next request's bytes come next.
func (b *h1ReqBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.remain == 0 && b.err == nil
}
