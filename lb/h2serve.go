package lb

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The native HTTP/2 engine's server for HTTP clients: the h2 connections
// of a TLS listener (browsers, API clients, gRPC clients) run on the
// frame engine of h2relay_conn.go instead of net/http's HTTP/2 server.
// Their gRPC calls to h2c pools are relayed (h2relay_call.go); every
// other stream becomes an *http.Request that ServeHTTP proxies as it does
// HTTP/1.1 requests, on a goroutine of its own, with the stream as its
// ResponseWriter. What it buys is the engine's writer: the frames of all
// streams of a connection that pile up while it writes go out in one
// TLS record and one system call, where net/http's server writes and
// flushes frame by frame from a goroutine per frame (bench/lb/RESULTS.md:
// 22k requests/s against HAProxy's 90k on one core, before this).

// h2ServeMaxStreams is the MAX_CONCURRENT_STREAMS offered to HTTP
// clients: each stream holds a goroutine and, for an HTTP/1.1 pool, an
// upstream connection. net/http's server offers the same.
const h2ServeMaxStreams = 250

// h2ServeConnWindow is an HTTP client connection's receive window: the
// most of its request bodies (and gRPC streams' messages) the lb holds
// unread, in front of upstreams that take them slower than the client
// sends. Four streams' windows (h2StreamWindow): a stream whose upstream
// stops reading holds its own window's worth, and the connection's
// other requests still go through, as with a gRPC server's own
// connection, whose window is credited as data arrives; only four such
// streams at once hold the whole connection back. The relay's 16 MiB
// would let each connection park that much in front of slow upstreams.
// net/http's server gets the same (h2ServeConnWindow in newHTTPServer).
const h2ServeConnWindow = 4 * h2StreamWindow

var (
	errStreamGone      = errors.New("http2: stream closed")
	errBodyOverLength  = errors.New("http2: request body longer than its content-length")
	errBodyUnderLength = errors.New("http2: request body shorter than its content-length")
)

// adopt serves a TLS connection whose client negotiated h2 (the fast
// loop's handshake hands it over); false when the engine is draining,
// and the caller closes it.
func (e *h2Relay) adopt(tc *tls.Conn, st *tls.ConnectionState) bool {
	c := e.track(tc, false)
	if c == nil {
		return false
	}
	c.serveHTTP(st)
	go e.serveConn(c)
	return true
}

// serveHTTP makes a new client connection's streams HTTP requests, with
// the connection's TLS state (nil for h2c).
func (c *h2conn) serveHTTP(st *tls.ConnectionState) {
	c.serve, c.maxStreams = true, h2ServeMaxStreams
	c.connWindow, c.recvAvail = h2ServeConnWindow, h2ServeConnWindow
	c.reqTemplate.TLS = st
}

// h2Stream is one request of an HTTP/2 client: the stream on the client's
// connection (down), the request ServeHTTP gets, and its ResponseWriter
// (the stream itself). The answer's fields are the handler goroutine's;
// what touches the connection runs under the connection's mu.
type h2Stream struct {
	down   leg
	c      *h2conn
	req    *http.Request
	ctx    *h1ConnCtx
	cancel context.CancelCauseFunc
	body   h2ReqBody

	hdr         http.Header
	status      int
	wroteHeader bool // the status is fixed
	sentHeader  bool // the HEADERS frame is out
	head        bool // a HEAD request: no body goes out
	noBody      bool // 204 or 304: a body is an error
	trailers    []string
	// setup: whether parse still sets the request up (streamParsing),
	// has done so (streamReady), or the client went meanwhile (streamGone:
	// onClientGone left the stream's end to openServeStream).
	setup atomic.Uint32
	// kit: the storage an earlier request of the connection left, which
	// this one uses and, when recycled (recycle), gives back (giveBack).
	kit      *h2Kit
	recycled bool
	// A Write's wait for the client's credit, bounded by send_timeout
	// (armStallLocked); under the connection's mu.
	stallTimer *time.Timer
	stallGen   uint64
	stalled    bool
}

// h2ReqBody is a request body fed by the connection's reader: DATA is
// copied in as it arrives and credited back to the client as the
// handler reads it, so the stream window bounds what it holds.
type h2ReqBody struct {
	s        *h2Stream
	mu       sync.Mutex
	buf      bytes.Buffer
	err      error // io.EOF once the stream ended and buf is read, or why it broke
	closed   bool  // the handler is done with it: what comes is credited at once
	ready    chan struct{}
	declared int64 // content-length, or -1
	received int64
	expect   bool // the client waits for 100 Continue before its body
	// idle is body_read_timeout (0 for gRPC, whose client streams may
	// idle): how long a Read waits for DATA; timer times it.
	idle  time.Duration
	timer *time.Timer
}

// h2Kit is what an HTTP/2 request proxied whole leaves for the next
// request on its connection, as the fast loop's connection keeps it
// between its requests (h1ResponseWriter.recycle): the exchange, the
// request's header map and its values' array, the answer's header map,
// and the upstream answer's storage (borrowAnswer). Without it each
// request left about 3 KB in 19 objects of garbage.
type h2Kit struct {
	px     *proxyExchange
	reqHdr http.Header // cleared
	vals   []string    // reqHdr's values' array
	resHdr http.Header // cleared
	answer *h1Response
}

// h2KitsPerConn bounds the kits a connection keeps: as many as the
// requests a browser has in flight at once, mostly.
const h2KitsPerConn = 16

// openServeStream registers a new stream of an HTTP client (under c.mu,
// which it releases) and starts its request, or refuses it.
func (c *h2conn) openServeStream(f *h2hdrs) error {
	hs := &h2Stream{c: c}
	if n := len(c.kits); n > 0 {
		hs.kit = c.kits[n-1]
		c.kits[n-1] = nil
		c.kits = c.kits[:n-1]
	}
	d := &hs.down
	*d = leg{c: c, id: f.StreamID, hs: hs, down: true, sendWin: c.peerWin, recvAvail: h2StreamWindow}
	c.streams[f.StreamID] = d
	if f.StreamEnded() {
		d.recvEnd = true
	}
	c.mu.Unlock()
	status, code := hs.parse(f)
	// The connection may have ended while the request was parsed (its
	// writer failed, the engine stopped): shutdown dropped the stream
	// then and left it to us (onClientGone found it parsing), since its
	// fields were being set. A handler started now would wait for a body
	// that no reader will bring.
	if !hs.setup.CompareAndSwap(streamParsing, streamReady) {
		hs.end(errClientGone)
		return nil
	}
	if code != 0 {
		c.mu.Lock()
		if c.resetAllowedLocked() {
			c.resetLocked(d, code)
			c.unlock()
			return nil
		}
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	if status != 0 {
		hs.answerNow(status)
		return nil
	}
	if e := c.engine; e != nil {
		e.httpRequests.Add(1)
		if hs.kit != nil {
			e.kitsReused.Add(1)
		}
	}
	h2Workers.run(hs)
	return nil
}

// h2WorkerPool runs the served streams' handlers on goroutines that it
// keeps between requests. A new goroutine per request (as net/http's
// server has) starts with a small stack and grows it, copying, as the
// proxy's calls deepen: an eighth of the engine's CPU in profiles. A
// worker keeps the stack it grew. Workers idle past two sweeps of the
// janitor end, and at most maxIdle wait.
type h2WorkerPool struct {
	mu       sync.Mutex
	idle     []*h2Worker // the most recently idle last
	janitor  *time.Timer
	maxIdle  int
	idleTime time.Duration
	started  atomic.Int64 // goroutines started, for tests
}

type h2Worker struct {
	next chan h2Task // nil ends the worker
	seen bool        // idle at the janitor's last sweep
}

// h2Task is a worker's job: a stream's request.
type h2Task interface{ serve() }

var h2Workers = h2WorkerPool{maxIdle: 256, idleTime: 30 * time.Second}

func (p *h2WorkerPool) run(hs h2Task) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.next <- hs
		return
	}
	p.mu.Unlock()
	p.started.Add(1)
	go p.work(hs)
}

func (p *h2WorkerPool) work(hs h2Task) {
	w := &h2Worker{next: make(chan h2Task, 1)}
	for hs != nil {
		hs.serve()
		p.mu.Lock()
		if len(p.idle) >= p.maxIdle {
			p.mu.Unlock()
			return
		}
		w.seen = false
		p.idle = append(p.idle, w)
		if p.janitor == nil {
			p.janitor = time.AfterFunc(p.idleTime, p.sweep)
		}
		p.mu.Unlock()
		hs = <-w.next
	}
}

// sweep ends the workers that were idle at the last sweep too.
func (p *h2WorkerPool) sweep() {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := p.idle[:0]
	for _, w := range p.idle {
		if w.seen {
			w.next <- nil
			continue
		}
		w.seen = true
		keep = append(keep, w)
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(p.idle) == 0 {
		p.janitor = nil
		return
	}
	p.janitor.Reset(p.idleTime)
}

// parse builds the stream's request from its header block (RFC 9113
// section 8.3); a malformed one is a stream error (code), one the engine
// answers itself a status.
func (hs *h2Stream) parse(f *h2hdrs) (status int, code http2.ErrCode) {
	c := hs.c
	var method, scheme, authority, path, protocol string
	regular := 0
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		case ":path":
			path = hf.Value
		case ":protocol":
			protocol = hf.Value
		default:
			regular++
		}
	}
	if protocol != "" {
		// Extended CONNECT (RFC 8441), which the engine does not offer.
		return 0, http2.ErrCodeProtocol
	}
	if method == http.MethodConnect {
		return http.StatusMethodNotAllowed, 0 // a proxy tunnel: not this proxy's job
	}
	if method == "" || scheme == "" || path == "" || path[0] != '/' && !(method == http.MethodOptions && path == "*") {
		return 0, http2.ErrCodeProtocol
	}
	if f.Truncated {
		return http.StatusRequestHeaderFieldsTooLarge, 0
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return 0, http2.ErrCodeProtocol
	}
	var h http.Header
	var vals []string
	if k := hs.kit; k != nil && k.reqHdr != nil {
		h, vals, k.reqHdr = k.reqHdr, k.vals[:0], nil
	} else {
		h = make(http.Header, regular)
	}
	if cap(vals) < regular {
		vals = make([]string, 0, regular)
	}
	var cookies []string
	declared := int64(-1)
	for _, hf := range f.Fields[len(f.Fields)-regular:] {
		if hopByHop(hf.Name) {
			return 0, http2.ErrCodeProtocol // RFC 9113 section 8.2.2
		}
		switch hf.Name {
		case "te":
			if hf.Value != "trailers" {
				return 0, http2.ErrCodeProtocol
			}
		case "host":
			if authority == "" {
				authority = hf.Value
			}
			continue // the request's Host, as net/http does
		case "cookie":
			cookies = append(cookies, hf.Value) // joined below (section 8.2.3)
			continue
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || declared >= 0 && n != declared {
				return 0, http2.ErrCodeProtocol
			}
			declared = n
		case "expect":
			hs.body.expect = strings.EqualFold(hf.Value, "100-continue")
		}
		key := c.canonicalName(hf.Name)
		vals = append(vals, hf.Value)
		if vv, ok := h[key]; ok {
			h[key] = append(vv, hf.Value)
		} else {
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	if len(cookies) > 0 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if hs.kit != nil {
		hs.kit.vals = vals // what h's values are in, with it (recycle)
	}
	// The request's context is a fast-loop connection's kind (h1ConnCtx):
	// the upstream transport registers its waits' aborts in it, and the
	// route's time-outs run on its clock (reqclock.go), instead of a
	// context.AfterFunc per wait and derived contexts with timers per
	// attempt.
	cctx, cancel := context.WithCancelCause(context.Background())
	ctx := &h1ConnCtx{Context: cctx, noForwarded: c.engine.l.cfg.ProxyProtocol, balancerTLS: c.balancerTLS}
	if k := hs.kit; k != nil {
		ctx.answer, k.answer = k.answer, nil
	}
	r := c.reqTemplate.WithContext(ctx)
	r.Method, r.URL, r.RequestURI, r.Host, r.Header = method, u, path, authority, h
	hs.req, hs.ctx, hs.cancel = r, ctx, cancel
	hs.head = method == http.MethodHead
	switch {
	case hs.down.recvEnd:
		if declared > 0 {
			return 0, http2.ErrCodeProtocol
		}
		r.Body, r.ContentLength = http.NoBody, 0
	default:
		hs.body.s, hs.body.declared, hs.body.ready = hs, declared, make(chan struct{}, 1)
		if !isGRPCContentType(headerGet(h, "Content-Type")) {
			hs.body.idle = c.bodyTimeout
		}
		r.Body, r.ContentLength = &hs.body, declared
		ctx.setOnExpire(hs.body.expire)
	}
	return 0, 0
}

// serve runs the request through ServeHTTP and ends the stream.
func (hs *h2Stream) serve() {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				hs.c.srv.log.Error("lb HTTP/2 handler panicked", "panic", p, "stack", string(debug.Stack()))
				if hs.c.panics != nil {
					hs.c.panics()
				}
			}
			hs.abort()
		}
		hs.end(nil)
		hs.giveBack()
	}()
	hs.c.srv.ServeHTTP(hs, hs.req)
	hs.finish()
}

// takeExchange returns the exchange an earlier request left in the
// stream's kit, cleared, or a new one.
func (hs *h2Stream) takeExchange() *proxyExchange {
	if hs == nil || hs.kit == nil {
		return &proxyExchange{}
	}
	return takeKept(&hs.kit.px)
}

// recycle keeps the request's storage in the stream's kit once ServeHTTP
// is done with it and nothing else can hold any of it (proxyExchange's
// reusable), as h1ResponseWriter.recycle does for the fast loop's
// connection; giveBack hands the kit to the connection once the stream
// is over.
func (hs *h2Stream) recycle(px *proxyExchange, reqHeader http.Header) {
	if hs == nil {
		return
	}
	k := hs.kit
	if k == nil {
		k = &h2Kit{}
		hs.kit = k
	}
	res := px.endForReuse()
	k.px, k.reqHdr, k.resHdr = px, reqHeader, hs.hdr
	if res != nil {
		// The answer's map was copied into hs.hdr (respond), not adopted.
		k.answer = hs.ctx.takeLent(res, res.Header)
	}
	hs.recycled = true
}

// giveBack hands a recycled stream's kit to its connection for the next
// request, once the stream is gone from the connection (finish or abort
// closed it): the connection's reader then never reaches it again, and
// the handler is done with its maps (finish read the trailers).
func (hs *h2Stream) giveBack() {
	k, c := hs.kit, hs.c
	if !hs.recycled || k == nil {
		return
	}
	c.mu.Lock()
	closed := hs.down.closed
	c.mu.Unlock()
	if !closed {
		return
	}
	// Still the stream's own: cleared before the connection gets it.
	clear(k.reqHdr)
	clear(k.resHdr)
	clear(k.vals[:cap(k.vals)]) // no old values pinned
	c.mu.Lock()
	if !c.closed && len(c.kits) < h2KitsPerConn {
		c.kits = append(c.kits, k)
	}
	c.mu.Unlock()
}

// end cancels the request's context (cause nil: it is over) and runs
// the abort its upstream wait registered; nil for a stream that never
// had a request.
func (hs *h2Stream) end(cause error) {
	if hs.cancel == nil {
		return
	}
	hs.cancel(cause)
	hs.ctx.fire()
	if cause == nil {
		hs.ctx.stopClock()
	}
}

// answerNow answers a request the engine refuses by itself.
func (hs *h2Stream) answerNow(status int) {
	c := hs.c
	c.mu.Lock()
	if !hs.down.closed && !c.closed {
		c.field(":status", statusString(status), false)
		c.field("content-length", "0", false)
		c.writeHeaderBlockLocked(hs.down.id, true)
		c.sentEndLocked(&hs.down)
	}
	c.unlock()
}

func (hs *h2Stream) Header() http.Header {
	if hs.hdr == nil {
		if k := hs.kit; k != nil && k.resHdr != nil {
			hs.hdr, k.resHdr = k.resHdr, nil
		} else {
			hs.hdr = make(http.Header, 8)
		}
	}
	return hs.hdr
}

func (hs *h2Stream) WriteHeader(code int) {
	if hs.wroteHeader {
		return
	}
	if code >= 100 && code < 200 {
		if code != http.StatusContinue && code != http.StatusSwitchingProtocols {
			hs.informational(code) // 103 Early Hints
		}
		return
	}
	hs.wroteHeader, hs.status = true, code
	hs.noBody = !bodyAllowedForStatus(code)
	// The names announced as trailers are sent after the body (finish),
	// not in the head, whatever the handler sets before.
	for _, v := range hs.hdr["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				hs.trailers = append(hs.trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
}

func (hs *h2Stream) informational(code int) {
	c := hs.c
	c.mu.Lock()
	if !hs.down.closed && !c.closed {
		c.field(":status", statusString(code), false)
		hs.encodeFieldsLocked(false)
		c.writeHeaderBlockLocked(hs.down.id, false)
	}
	c.unlock()
}

// sendHeaderLocked sends the answer's head; end: the stream ends with it.
func (hs *h2Stream) sendHeaderLocked(end bool) {
	hs.sentHeader = true
	c := hs.c
	if hs.down.closed || c.closed {
		return
	}
	c.field(":status", statusString(hs.status), false)
	if !hs.encodeFieldsLocked(true) {
		c.field("date", httpDate(), false)
	}
	c.writeHeaderBlockLocked(hs.down.id, end)
	if end {
		c.sentEndLocked(&hs.down)
	}
}

// encodeFieldsLocked encodes the answer's fields, less what HTTP/2 does
// not carry (connection-specific fields, the trailers), and reports
// whether there was a Date.
func (hs *h2Stream) encodeFieldsLocked(skipTrailers bool) (hasDate bool) {
	c := hs.c
	for k, vv := range hs.hdr {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		case "Date":
			hasDate = len(vv) > 0
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || skipTrailers && hs.isTrailer(k) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		name := lowerName(k)
		once := unindexedField(name)
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				c.field(name, v, once)
			}
		}
	}
	return hasDate
}

func (hs *h2Stream) isTrailer(k string) bool {
	for _, t := range hs.trailers {
		if t == k {
			return true
		}
	}
	return false
}

func (hs *h2Stream) Write(p []byte) (int, error) {
	if !hs.wroteHeader {
		hs.WriteHeader(http.StatusOK)
	}
	if hs.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if hs.head {
		return len(p), nil
	}
	c, l := hs.c, &hs.down
	c.mu.Lock()
	if !hs.sentHeader {
		hs.sendHeaderLocked(false)
	}
	n := 0
	waiting := false // a stall timer runs (armStallLocked)
	for len(p) > 0 {
		if l.closed || c.closed {
			if waiting {
				hs.disarmStallLocked()
			}
			c.unlock()
			return n, errStreamGone
		}
		if hs.stalled {
			// No credit or room for send_timeout: the client stopped
			// reading this answer.
			c.resetLocked(l, http2.ErrCodeCancel)
			c.unlock()
			hs.body.fail(errSendStalled)
			hs.end(errSendStalled)
			return n, errSendStalled
		}
		k := int(max(0, min(int64(len(p)), l.sendWin, c.sendWin, c.bufRoom())))
		if k > 0 && waiting {
			hs.disarmStallLocked() // progress
			waiting = false
		}
		if k == 0 {
			if !waiting {
				hs.armStallLocked()
				waiting = true
			}
			// Out of buffer room: the writer's next batch makes room and
			// wakes us. Out of credit: a WINDOW_UPDATE or SETTINGS
			// (releaseLocked) or the stream's end (dropLocked) does. The
			// writer is kicked only when it has something to send: kicked
			// with nothing, it would wake us at once for nothing, and the
			// two would spin for as long as the client withheld credit.
			if len(c.wb.b) > 0 {
				c.kickWriter()
			}
			c.waiters++
			c.cond.Wait()
			c.waiters--
			continue
		}
		c.writeDataLocked(l.id, false, p[:k])
		l.sendWin -= int64(k)
		c.sendWin -= int64(k)
		p, n = p[k:], n+k
	}
	c.unlock()
	return n, nil
}

// h2Stream.setup's states.
const (
	streamParsing = iota
	streamReady
	streamGone
)

var errSendStalled = errors.New("http2: the client took no data for send_timeout")

// armStallLocked starts the timer that ends a Write whose wait for
// credit or buffer room lasts send_timeout (it sets stalled and wakes the
// waiters); a generation tells a timer that fires after its disarm from
// a current one.
func (hs *h2Stream) armStallLocked() {
	c := hs.c
	if c.sendTimeout <= 0 {
		return
	}
	hs.stallGen++
	gen := hs.stallGen
	hs.stallTimer = time.AfterFunc(c.sendTimeout, func() {
		c.mu.Lock()
		if hs.stallGen == gen {
			hs.stalled = true
			c.wakeWritersLocked()
		}
		c.mu.Unlock()
	})
}

// disarmStallLocked stops the stall timer: the client took data.
func (hs *h2Stream) disarmStallLocked() {
	hs.stallGen++
	if hs.stallTimer != nil {
		hs.stallTimer.Stop()
		hs.stallTimer = nil
	}
}

// Flush sends the head if it has not gone yet; the writer sends what is
// written as soon as it runs (unlock wakes it).
func (hs *h2Stream) Flush() {
	if !hs.wroteHeader {
		hs.WriteHeader(http.StatusOK)
	}
	c := hs.c
	c.mu.Lock()
	if !hs.sentHeader {
		hs.sendHeaderLocked(false)
	}
	c.unlock()
}

// finish ends the stream once the handler returned: the head if it has
// not gone, then the trailers or an empty DATA frame with END_STREAM.
func (hs *h2Stream) finish() {
	if !hs.wroteHeader {
		hs.WriteHeader(http.StatusOK)
	}
	c, l := hs.c, &hs.down
	var fields []hpack.HeaderField
	for k, vv := range hs.hdr {
		if !strings.HasPrefix(k, http.TrailerPrefix) && !hs.isTrailer(k) {
			continue
		}
		name := lowerName(strings.TrimPrefix(k, http.TrailerPrefix))
		if name == "" || hopByHop(name) || !httpguts.ValidHeaderFieldName(name) {
			continue // what HTTP/2 cannot carry, as in the head (encodeFieldsLocked)
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				fields = append(fields, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	c.mu.Lock()
	switch {
	case !hs.sentHeader && len(fields) == 0:
		hs.sendHeaderLocked(true)
	case l.closed || c.closed || l.sentEnd:
	default:
		if !hs.sentHeader {
			hs.sendHeaderLocked(false)
		}
		if len(fields) > 0 {
			for _, hf := range fields {
				c.writeFieldLocked(hf)
			}
			c.writeHeaderBlockLocked(l.id, true)
		} else {
			_ = c.fr.WriteData(l.id, true, nil)
		}
		c.sentEndLocked(l)
	}
	c.unlock()
	hs.body.Close()
}

// abort resets the stream: the handler broke off (an upstream that
// failed mid-answer), so the client must not take the answer as whole.
func (hs *h2Stream) abort() {
	c := hs.c
	c.mu.Lock()
	c.resetLocked(&hs.down, http2.ErrCodeInternal)
	c.unlock()
	hs.body.Close()
}

// onClientGone: the client reset the stream or the connection ended.
func (hs *h2Stream) onClientGone() {
	if hs.setup.CompareAndSwap(streamParsing, streamGone) {
		return // openServeStream ends it (see there)
	}
	hs.body.fail(errClientGone)
	hs.end(errClientGone)
}

// onClientData takes request bytes from the connection's reader.
func (hs *h2Stream) onClientData(data []byte, end bool) {
	b := &hs.body
	if b.s == nil {
		// No request runs (the engine answered it): nothing reads.
		hs.c.credit(nil, len(data))
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		hs.c.credit(nil, len(data))
		return
	}
	b.received += int64(len(data))
	var bad error
	switch {
	case b.declared >= 0 && b.received > b.declared:
		bad = errBodyOverLength
	case end && b.declared >= 0 && b.received != b.declared:
		bad = errBodyUnderLength
	}
	if bad == nil {
		b.buf.Write(data)
		if end {
			b.err = errBodyEnd
		}
	}
	b.mu.Unlock()
	if bad != nil {
		// A malformed request (RFC 9113 section 8.1.1).
		c := hs.c
		c.mu.Lock()
		c.resetLocked(&hs.down, http2.ErrCodeProtocol)
		c.unlock()
		c.credit(nil, len(data))
		b.fail(bad)
		hs.end(bad)
		return
	}
	b.wake()
}

// errBodyEnd marks a body whose last byte arrived; Read answers io.EOF
// once the buffer is empty.
var errBodyEnd = errors.New("end of body")

func (b *h2ReqBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.expect {
		b.expect = false
		b.s.continue100()
	}
	for {
		b.mu.Lock()
		if b.buf.Len() > 0 {
			n, _ := b.buf.Read(p)
			b.mu.Unlock()
			b.s.c.credit(&b.s.down, n)
			return n, nil
		}
		err := b.err
		if b.closed && err == nil {
			err = http.ErrBodyReadAfterClose
		}
		b.mu.Unlock()
		if err == errBodyEnd {
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		if !b.wait() {
			b.fail(errBodyIdle)
		}
	}
}

// wait waits for DATA (or the body's end), b.idle at most; false when
// that passed.
func (b *h2ReqBody) wait() bool {
	if b.idle <= 0 {
		<-b.ready
		return true
	}
	if b.timer == nil {
		b.timer = time.NewTimer(b.idle)
	} else {
		b.timer.Reset(b.idle)
	}
	select {
	case <-b.ready:
		b.timer.Stop()
		return true
	case <-b.timer.C:
		return false
	}
}

// buffered is what Read returns without waiting (see bufferedBody).
func (b *h2ReqBody) buffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Close gives what was received and not read back to the connection's
// window; later DATA is credited as it comes.
func (b *h2ReqBody) Close() error {
	if b.s == nil {
		return nil
	}
	b.mu.Lock()
	unread := b.buf.Len()
	b.buf = bytes.Buffer{}
	b.closed = true
	b.mu.Unlock()
	b.s.c.credit(nil, unread)
	b.wake() // a Read still waiting (a transport's writer) ends
	return nil
}

// expire ends a wait for the client's body: the request's time-out
// passed (h1ConnCtx.onExpire).
func (b *h2ReqBody) expire() { b.fail(errBodyWaitExpired) }

func (b *h2ReqBody) wake() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

func (b *h2ReqBody) fail(err error) {
	if b.s == nil {
		return
	}
	b.mu.Lock()
	if b.err == nil || b.err == errBodyEnd && b.buf.Len() > 0 {
		b.err = err
	}
	b.mu.Unlock()
	b.wake()
}

// continue100 tells a client that waits for it to send its body.
func (hs *h2Stream) continue100() {
	c := hs.c
	c.mu.Lock()
	if !hs.sentHeader && !hs.down.closed && !c.closed {
		c.field(":status", "100", false)
		c.writeHeaderBlockLocked(hs.down.id, false)
	}
	c.unlock()
}

// kickWriter wakes the connection's writer.
func (c *h2conn) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// wakeWritersLocked wakes the handlers waiting in Write for credit or
// buffer room.
func (c *h2conn) wakeWritersLocked() {
	if c.waiters > 0 {
		c.cond.Broadcast()
	}
}

// canonicalName is an HTTP/2 field name in net/http's canonical form,
// without an allocation for common names and, per connection, for the
// names a client keeps sending.
func (c *h2conn) canonicalName(name string) string {
	if k, ok := commonCanonical[name]; ok {
		return k
	}
	if k, ok := c.canon[name]; ok {
		return k
	}
	k := http.CanonicalHeaderKey(name)
	if c.canon == nil {
		c.canon = map[string]string{}
	}
	if len(c.canon) < 64 {
		c.canon[name] = k
	}
	return k
}

// unindexedField: a field whose values rarely repeat, sent as a literal
// that neither side adds to its HPACK table. Indexed, each such value
// evicted an older entry from the encoder's table, at a cost that grows
// with the table (a tenth of the engine's CPU with X-Request-Id alone);
// cookies are kept out of tables for their secrecy (RFC 7541 section
// 7.1.3).
func unindexedField(name string) bool {
	switch name {
	case "x-request-id", "content-length", "etag", "last-modified", "set-cookie", "traceparent", "tracestate", "age", "expires":
		return true
	}
	return false
}

// lowerName is a canonical field name as HTTP/2 sends it.
func lowerName(k string) string {
	if n, ok := commonLower[k]; ok {
		return n
	}
	return strings.ToLower(k)
}

var commonCanonical, commonLower = func() (map[string]string, map[string]string) {
	names := []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
		"Access-Control-Request-Headers", "Access-Control-Request-Method", "Age", "Allow",
		"Authorization", "Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
		"Content-Length", "Content-Location", "Content-Range", "Content-Type", "Cookie", "Date", "Dnt",
		"Etag", "Expect", "Expires", "Forwarded", "From", "Grpc-Encoding", "Grpc-Accept-Encoding",
		"Grpc-Message", "Grpc-Status", "Grpc-Timeout", "Host", "If-Match", "If-Modified-Since",
		"If-None-Match", "If-Range", "If-Unmodified-Since", "Last-Modified", "Link", "Location",
		"Max-Forwards", "Origin", "Pragma", "Priority", "Proxy-Authenticate", "Proxy-Authorization", "Range",
		"Referer", "Refresh", "Retry-After", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Te", "Trailer", "Traceparent", "Tracestate", "Upgrade-Insecure-Requests",
		"User-Agent", "Vary", "Via", "Www-Authenticate", "X-Api-Key", "X-Content-Type-Options",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Frame-Options", "X-Request-Id",
		"X-Requested-With", "X-Xss-Protection",
	}
	canon, lower := make(map[string]string, len(names)), make(map[string]string, len(names))
	for _, k := range names {
		l := strings.ToLower(k)
		canon[l], lower[k] = k, l
	}
	return canon, lower
}()

// statusString is a status code's text, without an allocation.
func statusString(code int) string {
	if code >= 100 && code < len(statusStrings) {
		return statusStrings[code]
	}
	return strconv.Itoa(code)
}

var statusStrings = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

var _ http.Flusher = (*h2Stream)(nil)
