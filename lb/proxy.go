package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// exchange is what the access log and metrics learn about one request.
type exchange struct {
	route *route
	// client is the address the request came from when its peer is a
	// trusted proxy (proxyTrust.client); "" otherwise (the peer is).
	client   string
	upstream string
	status   int
	attempts int
	bytes    int64
	err      error
	// whole: the answer, of known length without trailers, was relayed
	// to its end; sendNow (HTTP/1.x): send it once the bookkeeping is
	// done (see sendNow).
	whole, sendNow bool
	// pending is the pool whose count of requests in flight (max_pending)
	// this one holds, until it ends or becomes a tunnel (relayUpgrade).
	pending *Pool

	// triedBuf backs proxy's list of upstreams tried: the exchange is on
	// the heap anyway, and the list escapes into the picker.
	triedBuf [4]*Upstream
}

var (
	errTryTimeout   = errors.New("upstream did not answer within try_timeout")
	errBodyTooLarge = errors.New("request body exceeds max_body_bytes")
	errClientBody   = errors.New("reading the client's request body")
	// errBodyWaitExpired ends a wait for the client's body when the
	// request's time-out passes: the time-out's fault (504), not the
	// client's body's (400).
	errBodyWaitExpired = errors.New("request time-out passed while waiting for the client's body")
	// errBodyIdle: the client's body paused past the listener's
	// body_read_timeout (408).
	errBodyIdle = errors.New("request body paused past body_read_timeout")
)

// ServeHTTP proxies one request: route, admit (rate limit, size limit,
// circuit breaker), pick an upstream, retry what may be retried, and stream
// the answer back with its trailers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := s.state.Load()
	hw, _ := w.(*h1ResponseWriter)
	if hw == nil && r.TLS == nil {
		if st, ok := r.Context().Value(handedTLSKey{}).(*tls.ConnectionState); ok {
			r.TLS = st // handed over by the fast loop (newHTTPServer)
		}
	}
	hs, _ := w.(*h2Stream)
	var px *proxyExchange
	if hs != nil {
		px = hs.takeExchange()
	} else {
		px = hw.takeExchange()
	}
	px.start = start
	ex := &px.ex

	// Direct map access: the key is already canonical, so net/http's
	// Get/Set would only spend time canonicalising it again. The answer
	// echoes only the first value; a capped slice of the request's own
	// spares an allocation (appending to either copies).
	reqID := ""
	var reqIDValue []string
	if vv := r.Header["X-Request-Id"]; len(vv) > 0 {
		reqID, reqIDValue = vv[0], vv[:1:1]
	}
	if reqID == "" || len(reqID) > 200 {
		reqID = newRequestID()
		px.reqID[0] = reqID
		reqIDValue = px.reqID[:]
		r.Header["X-Request-Id"] = reqIDValue
	}
	w.Header()["X-Request-Id"] = reqIDValue
	if r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// A chunked HTTP/1.1 request may have carried a conflicting
		// Content-Length, which Go's parser drops without telling us
		// (Transfer-Encoding wins, RFC 9112 6.1). That RFC then requires
		// closing the connection, so whatever was pipelined behind the
		// body (a smuggling attempt) is never read as a request.
		w.Header().Set("Connection", "close")
	}

	defer func() {
		d := time.Since(start)
		if ex.route != nil {
			ex.route.metrics.observe(ex.status, d)
		}
		if st.accessLog {
			s.logAccess(r, reqID, ex, d)
		}
		if ex.sendNow {
			sendNow(w)
		}
		if px.reusable {
			if hs != nil {
				hs.recycle(px, r.Header)
			} else {
				hw.recycle(px, r.Header)
			}
		}
	}()

	if st.trust != nil && forwardedTrusted(r) {
		if peer := peerAddr(r.RemoteAddr); st.trust.trusts(peer) {
			ex.client = st.trust.client(peer, r.Header["X-Forwarded-For"]).String()
		}
	}
	if hasDotSegment(r.URL.Path) {
		ex.status = writeError(w, r, http.StatusBadRequest, codes.InvalidArgument, "path has . or .. segments")
		return
	}
	ro := st.router.match(r)
	if ro == nil {
		s.noRoute.Inc()
		ex.status = writeError(w, r, http.StatusNotFound, codes.Unimplemented, "no route for this request")
		return
	}
	ex.route = ro
	s.proxy(w, r, ro, px)
}

// proxyExchange holds a proxied request's exchange and the storage of
// its first attempt's outbound request in one allocation.
type proxyExchange struct {
	ex     exchange
	out    http.Request
	outURL url.URL
	reqID  [1]string
	start  time.Time      // when ServeHTTP began
	res    *http.Response // the answer relayed, when reusable
	// reusable: nothing can hold the exchange once the request ends, so
	// the fast loop's connection may reuse it for its next request
	// (takeExchange): the one attempt went through the h1Transport's own
	// path (no body or a small one, no upgrade, plain HTTP), which keeps
	// nothing of the request once its answer is read to the end, and that
	// answer was relayed whole.
	reusable bool
}

// takeExchange returns the exchange the connection's last request left
// for reuse, cleared, or a new one; w may be nil (not the fast loop).
func (w *h1ResponseWriter) takeExchange() *proxyExchange {
	if w == nil {
		return &proxyExchange{}
	}
	return takeKept(&w.c.px)
}

// takeKept returns the exchange *kept holds, cleared, and empties *kept;
// a new exchange when it holds none.
func takeKept(kept **proxyExchange) *proxyExchange {
	px := *kept
	if px == nil {
		return &proxyExchange{}
	}
	*kept = nil
	*px = proxyExchange{}
	return px
}

// recycle keeps a request's storage for the connection's next request,
// once the request is over and nothing can hold any of it (reusable):
// the exchange, the request's header map, and the upstream answer's
// storage with the header map that relaying it left free (the answer's
// own, or the one the writer gave up when it adopted that). Without
// this, each request left about 2 KB of garbage, and the collections
// that caused (one every 85 ms at 70k requests/s) delayed the requests
// they overlapped: most of the p99 under load.
func (w *h1ResponseWriter) recycle(px *proxyExchange, reqHeader http.Header) {
	if w == nil {
		return
	}
	c := w.c
	res := px.endForReuse()
	c.px, c.reqHeader = px, reqHeader
	free := w.released
	if free == nil && res != nil {
		free = res.Header // copied into the writer's map, not adopted
	}
	if a := c.ctx.takeLent(res, free); a != nil {
		c.ctx.answer = a
	}
}

// endForReuse clears what px keeps of the request that ends, now rather
// than when it is next used, so that a kept exchange pins nothing else
// (the upstream connection the answer came on, a route of a config since
// reloaded), and returns the answer it relayed. px.reqID stays: the
// answer, written after this, may still show it.
func (px *proxyExchange) endForReuse() *http.Response {
	res := px.res
	px.ex, px.out, px.outURL, px.res = exchange{}, http.Request{}, url.URL{}, nil
	return res
}

// takeLent takes back the answer storage (borrowAnswer) that res was
// read into, for the next request, with free (cleared) as its header
// map; nil when res was not borrowed from x (another context, or an
// answer read otherwise).
func (x *h1ConnCtx) takeLent(res *http.Response, free http.Header) *h1Response {
	if x.lent == nil || res != &x.lent.res {
		return nil
	}
	clear(free)
	a := x.lent
	*a = h1Response{hdr: free}
	x.lent = nil
	return a
}

func (s *Server) proxy(w http.ResponseWriter, r *http.Request, ro *route, px *proxyExchange) {
	ex := &px.ex
	if ro.limiter != nil {
		if ok, wait := ro.limiter.allow(ro.limiter.clientKey(r, ex.client), time.Now()); !ok {
			ro.metrics.reject("rate_limit")
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			ex.status = writeError(w, r, http.StatusTooManyRequests, codes.ResourceExhausted, "rate limit exceeded")
			return
		}
	}
	hasBody := r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
	var body *trackedBody
	if hasBody {
		if max := int64(ro.cfg.MaxBodyBytes); max > 0 && r.ContentLength > max {
			ro.metrics.reject("body_too_large")
			ex.status = writeError(w, r, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "request body too large")
			return
		}
		body = &trackedBody{rc: r.Body, limit: int64(ro.cfg.MaxBodyBytes), length: max(r.ContentLength, 0)}
		if _, ok := r.Body.(expirableBody); !ok {
			// net/http's body (a request the fast loop left to it): its
			// reads end at the connection's read deadline, which the
			// connection itself renews per socket read on HTTP/1.1
			// (prefixConn.watchBody), and the body per read on HTTP/2,
			// where it is the stream's.
			if l, _ := r.Context().Value(listenerKey{}).(*listener); l != nil {
				body.idleWait = time.Duration(l.cfg.BodyReadTimeout)
			}
			if pc, _ := r.Context().Value(handedConnKey{}).(*prefixConn); pc != nil && r.ProtoMajor == 1 {
				body.conn = pc
				defer body.release()
			} else {
				rc := http.NewResponseController(w)
				body.setDeadline = func(t time.Time) { _ = rc.SetReadDeadline(t) }
			}
		}
	}

	pool := ro.pool
	if !pool.admit() {
		ro.metrics.reject("circuit_open")
		ex.status = writeError(w, r, http.StatusServiceUnavailable, codes.Unavailable, "upstream pool is saturated")
		return
	}
	ex.pending = pool
	defer ex.releasePending()
	pool.budget.requestAt(px.start)

	upgrade := upgradeType(r)
	if upgrade != "" && hasBody {
		// A WebSocket handshake has none; the transport would still be
		// sending it when the 101 hands the connection to the tunnel,
		// and both would read the client.
		ex.status = writeError(w, r, http.StatusBadRequest, codes.InvalidArgument, "upgrade request with a body")
		return
	}
	hdr := forwardHeader(r, upgrade, ex.client)

	// native: the h1Transport's own path carries the request, which
	// keeps nothing of it once its answer is read.
	t, native := pool.transport.(*h1Transport)
	native = native && t.nativeParts(nativeBody(r.ContentLength, hasBody), hdr, pool.scheme)

	// Time-outs: on the fast loop's connection clock where the
	// h1Transport's own path carries the request (reqClock), else in
	// derived contexts.
	ctx := r.Context()
	timeout, tryTimeout := time.Duration(ro.cfg.Timeout), time.Duration(ro.cfg.TryTimeout)
	var clock *h1ConnCtx
	if x, ok := ctx.(*h1ConnCtx); ok && native && (timeout > 0 || tryTimeout > 0) {
		clock = x
		x.beginRequest(px.start, timeout)
		defer x.endRequest()
	}
	if timeout > 0 && clock == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
		if body != nil {
			// A wait for the client's body ends with the request too;
			// else a client that stops sending holds the upstream
			// connection for as long as it likes.
			defer context.AfterFunc(ctx, body.expire)()
		}
	}
	// timedOut reports whether the request's time-out passed.
	timedOut := func() bool { return ctx.Err() != nil || (clock != nil && clock.routeExpired()) }
	retryable := !hasBody && idempotent(r)
	maxAttempts := 1 + *ro.cfg.Retries

	tried := ex.triedBuf[:0]
	var lastErr error
	lastStatus := 0
	for attempt := 1; ; attempt++ {
		u := pool.picker.Pick(r, pool.upstreams, tried)
		if u == nil {
			break
		}
		tried = append(tried, u)
		ex.attempts, ex.upstream = attempt, u.Addr

		// The first attempt's request lives in px. A later attempt gets
		// its own: a failed one's may still be in a transport's hands.
		var out *http.Request
		var outURL *url.URL
		if attempt == 1 && ctx == r.Context() {
			out, outURL = &px.out, &px.outURL
			*out = *r // r.WithContext(ctx), without its allocation
		} else {
			out, outURL = r.WithContext(ctx), new(url.URL)
		}
		*outURL = url.URL{Scheme: pool.scheme, Host: u.Addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		out.Header = hdr
		out.URL = outURL
		out.RequestURI = ""
		out.Close = false
		if body != nil {
			out.Body = body
		} else {
			out.Body = nil
		}

		res, tryCancel, err := s.attempt(out, pool, u, tryTimeout, clock)
		// A retry goes to an upstream not tried yet (the pickers avoid
		// the tried ones, in panic mode too, and those known to be down
		// while one is up): with none left, a failed answer is relayed
		// as it is, and no budget is spent. Asked only of a failed
		// attempt: canRetry goes over the pool's upstreams.
		mayRetry := func() bool {
			return attempt < maxAttempts && !timedOut() && canRetry(pool.upstreams, tried)
		}
		if err != nil {
			lastErr, lastStatus = err, 0
			if !timedOut() && !errors.Is(err, errBodyTooLarge) && !errors.Is(err, errClientBody) {
				pool.recordOutcome(u, outcomeGatewayFailure)
			}
			u.inflight.Add(-1)
			tryCancel()
			if (retryable || (isConnectError(err) && !body.touched())) && mayRetry() && pool.budget.tryRetry() {
				ro.metrics.retries.Inc()
				continue
			}
			break
		}
		if failureStatus(res.StatusCode) {
			pool.recordOutcome(u, outcomeGatewayFailure)
			if retryable && mayRetry() && pool.budget.tryRetry() {
				lastErr, lastStatus = nil, res.StatusCode
				res.Body.Close()
				u.inflight.Add(-1)
				tryCancel()
				ro.metrics.retries.Inc()
				continue
			}
		} else {
			pool.recordOutcome(u, outcomeSuccess)
		}
		func() {
			// respond panics (http.ErrAbortHandler) when the upstream
			// breaks off mid-answer: the count must drop all the same, or
			// least_requests and p2c_ewma shun the upstream for good.
			defer func() {
				u.inflight.Add(-1)
				tryCancel()
			}()
			s.respond(w, r, res, ex, upgrade)
		}()
		if native && ex.whole && out == &px.out {
			px.reusable, px.res = true, res
		}
		return
	}

	// No attempt produced a response to relay.
	ex.err = lastErr
	switch {
	case errors.Is(lastErr, errBodyTooLarge):
		ro.metrics.reject("body_too_large")
		ex.status = writeError(w, r, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, "request body too large")
	case body.idledOut():
		ex.status = writeError(w, r, http.StatusRequestTimeout, codes.DeadlineExceeded, "request body paused too long")
	case errors.Is(lastErr, errClientBody):
		ex.status = writeError(w, r, http.StatusBadRequest, codes.InvalidArgument, "malformed request body")
	case errors.Is(lastErr, errBodyWaitExpired) || body.cutShort():
		// Before the client-gone case: ending net/http's wait for the
		// body (endWait) cancels its request's context too.
		ex.status = writeError(w, r, http.StatusGatewayTimeout, codes.DeadlineExceeded, "request timed out waiting for its body")
	case r.Context().Err() != nil:
		// The client went away, or half-closed its end, which the fast
		// loop's watch cannot tell apart: it is let go unanswered (499),
		// as nginx does. An answer now would be the writer's empty 200,
		// which a client that still reads would take for the upstream's.
		ex.status = 499
		panic(http.ErrAbortHandler)
	case timedOut() || errors.Is(lastErr, errTryTimeout):
		ex.status = writeError(w, r, http.StatusGatewayTimeout, codes.DeadlineExceeded, "upstream timed out")
	case lastErr == nil && lastStatus == 0:
		ro.metrics.reject("no_upstream")
		ex.status = writeError(w, r, http.StatusServiceUnavailable, codes.Unavailable, "no upstream available")
	case lastErr == nil:
		ex.status = writeError(w, r, lastStatus, codes.Unavailable, "upstream failed: "+http.StatusText(lastStatus))
	default:
		ex.status = writeError(w, r, http.StatusBadGateway, codes.Unavailable, "upstream unreachable")
	}
}

// attempt sends out to u. The returned cancel ends the attempt's context
// and must be called once the response body is done. A try_timeout covers
// only the wait for response headers, so streams may outlive it. With a
// clock (see reqClock), the try_timeout runs on it.
func (s *Server) attempt(out *http.Request, pool *Pool, u *Upstream, tryTimeout time.Duration, clock *h1ConnCtx) (*http.Response, context.CancelFunc, error) {
	u.inflight.Add(1)
	ctx, cancelFn := out.Context(), noCancel
	var timer *time.Timer
	start := time.Now()
	body, _ := out.Body.(*trackedBody)
	// A body still to come from the client stops the try_timeout while
	// the transport waits for it (bodyTry): the time-out is the
	// upstream's, and a client uploading slowly (or stalling) must not
	// pass for a slow upstream, be answered 504 and have it ejected.
	// Pauses in the body are body_read_timeout's.
	var bt *bodyTry
	if tryTimeout > 0 && body != nil && !body.whole.Load() &&
		!(out.ContentLength > 0 && int64(body.buffered()) >= out.ContentLength-body.read) { // not all there already
		bt = &bodyTry{clock: clock, left: tryTimeout}
	}
	switch {
	case tryTimeout > 0 && clock != nil:
		if bt == nil {
			clock.beginTry(start, tryTimeout)
		} // else bt.run starts it on the clock, below
	case tryTimeout > 0:
		// Only a try time-out needs a context of its own; without one the
		// request's context already ends the attempt.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		cancelFn = func() { cancel(nil) }
		fire := func() {
			cancel(errTryTimeout)
			body.expire()
		}
		if bt == nil {
			timer = time.AfterFunc(tryTimeout, fire)
		} else {
			bt.fire = fire
		}
		out = out.WithContext(ctx)
	}
	if bt != nil {
		bt.run(start)
		body.setTry(bt)
	}
	res, err := pool.transport.RoundTrip(out)
	btFired := false
	if bt != nil {
		var last time.Time
		btFired, last = bt.end()
		if !last.IsZero() {
			start = last // the upstream's latency counts from the client's last bytes
		}
	}
	if b, _ := out.Body.(*trackedBody); b.cutShort() {
		// Whatever the attempt ended with (an upstream's answer to what
		// it got, a read error, net/http's cancelled request), it ended
		// because the time-out cut the client's body short.
		if err == nil {
			res.Body.Close()
		}
		res, err = nil, errBodyWaitExpired
	}
	tryExpired := false
	switch {
	case tryTimeout > 0 && clock != nil:
		tryExpired = clock.endTry()
	case timer != nil:
		tryExpired = !timer.Stop() && (err == nil || errors.Is(context.Cause(ctx), errTryTimeout))
	case bt != nil:
		tryExpired = btFired && (err == nil || errors.Is(context.Cause(ctx), errTryTimeout))
	}
	if tryExpired {
		// When the answer's head came as the time-out passed, the wait
		// for its body was aborted already: it could not be read.
		if err == nil {
			res.Body.Close()
		}
		err = errTryTimeout
	}
	if err != nil {
		if b, ok := out.Body.(*trackedBody); ok && b.tooLarge.Load() && !tryExpired {
			err = errBodyTooLarge
		} else if ok && b.clientErr.Load() && !tryExpired {
			err = fmt.Errorf("%w: %w", errClientBody, err)
		}
		return nil, cancelFn, err
	}
	if res.StatusCode < 100 {
		// Go's response reader takes "099"; no client could.
		res.Body.Close()
		return nil, cancelFn, errStatusInvalid(res.StatusCode)
	}
	end := time.Now()
	d := end.Sub(start)
	u.observeLatencyAt(d, end.UnixNano())
	u.metrics.latency.Observe(d.Seconds())
	return res, cancelFn, nil
}

// errStatusInvalid is an upstream's answer with a status code below 100,
// which HTTP has not (RFC 9110 section 15): the upstream failed (502).
func errStatusInvalid(code int) error {
	return fmt.Errorf("upstream answered with status %d, which is no HTTP status", code)
}

// bodyTry runs an attempt's try_timeout while its request body still
// comes from the client: the clock stops while a read of the body waits
// for the client (the transport's writer calls wait(true) before a read
// and wait(false) after it) and runs otherwise. It counts the upstream's
// time (the dial, taking the body, answering), not the client's upload:
// a slow or stalled client is body_read_timeout's and the route
// timeout's, an upstream that stops taking the body, or answering, is
// still the try's. The try runs on the connection's clock (reqClock) or
// on a timer of its own that calls fire. mu keeps a late wait(false)
// from starting a try its attempt has ended.
type bodyTry struct {
	mu     sync.Mutex
	clock  *h1ConnCtx
	fire   func()
	timer  *time.Timer
	left   time.Duration // the time the try has left, while stopped
	at     time.Time     // when it passes, while running
	last   time.Time     // when a read of the body last came back
	paused bool
	ended  bool
	fired  bool
}

// run starts (or restarts) the try's clock at now with the time left.
func (t *bodyTry) run(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runLocked(now)
}

func (t *bodyTry) runLocked(now time.Time) {
	t.paused, t.at = false, now.Add(t.left)
	switch {
	case t.clock != nil:
		t.clock.beginTry(now, t.left)
	case t.timer == nil:
		t.timer = time.AfterFunc(t.left, t.onFire)
	default:
		t.timer.Reset(t.left)
	}
}

func (t *bodyTry) onFire() {
	t.mu.Lock()
	t.fired = true
	t.mu.Unlock()
	t.fire()
}

// wait stops the clock while a read of the body waits for the client
// (waiting) and restarts it when the read is back.
func (t *bodyTry) wait(waiting bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.fired {
		return
	}
	now := time.Now()
	switch {
	case waiting && !t.paused:
		t.paused, t.left = true, max(t.at.Sub(now), 0)
		if t.clock != nil {
			t.fired = t.clock.endTry() // passed already: the attempt is aborted
		} else if !t.timer.Stop() {
			t.fired = true
		}
	case !waiting && t.paused:
		t.last = now
		t.runLocked(now)
	}
}

// end ends the try with its attempt: whether it passed (on its own
// timer; the clock reports its own), and when the client's body last
// came.
func (t *bodyTry) end() (fired bool, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ended = true
	if t.timer != nil && !t.paused && !t.timer.Stop() {
		t.fired = true
	}
	return t.fired, t.last
}

// releasePending ends the exchange's share of its pool's max_pending.
func (ex *exchange) releasePending() {
	if p := ex.pending; p != nil {
		ex.pending = nil
		p.done()
	}
}

// respond relays status, headers, body and trailers. The body is flushed
// as it arrives when its length is unknown (gRPC, SSE, chunked), so
// streams are not held back by buffering.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, res *http.Response, ex *exchange, upgrade string) {
	ex.status = res.StatusCode
	if res.StatusCode == http.StatusSwitchingProtocols {
		s.relayUpgrade(w, r, res, ex, upgrade)
		return
	}
	defer res.Body.Close()
	hop := hopUnknown
	var head *answerHead
	if b, ok := res.Body.(*h1Body); ok {
		hop, head = b.hop, b.head
	}
	stripHop(res.Header, hop)
	var h http.Header
	var fast *h1ResponseWriter
	if hw, ok := w.(*h1ResponseWriter); ok && hw.adoptHeader(res.Header) {
		h, fast = res.Header, hw // the fast loop's writer takes the map itself
	} else {
		h = w.Header()
		for k, vv := range res.Header {
			h[k] = vv
		}
	}
	if _, ok := h["Content-Type"]; !ok {
		// The upstream sent none: neither does the proxy. A nil entry keeps
		// the ResponseWriter (net/http's and the fast loop's) from sniffing
		// one from the body; it writes nothing.
		h["Content-Type"] = nil
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	} else if fast != nil && head != nil {
		fast.relayHead(head)
	}
	w.WriteHeader(res.StatusCode)
	var n int64
	var err error
	sized := false
	out := sendTimeoutWriter(w, r)
	if dw, ok := out.(*deadlineWriter); ok {
		defer dw.clear()
	}
	if res.ContentLength == -1 || strings.HasPrefix(headerGet(res.Header, "Content-Type"), "text/event-stream") {
		n, err = copyStreaming(out, http.NewResponseController(w), res.Body)
	} else {
		n, err = copyBody(out, res.Body)
		sized = true
	}
	ex.bytes = n
	if err != nil {
		ex.err = err
		if errors.Is(err, errUpstreamRead) {
			// The upstream broke off mid-body, or its read was aborted
			// (the client gone or half-closed, the route's time-out).
			// Abort the client's stream too, rather than letting a
			// truncated body look complete (a chunked one's last chunk).
			panic(http.ErrAbortHandler)
		}
		return
	}
	if sized && announced == 0 && len(res.Trailer) == 0 {
		ex.whole = true
		ex.sendNow = r.ProtoMajor == 1
		return
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			h[k] = vv
		}
		return
	}
	for k, vv := range res.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

// sendNow writes a complete HTTP/1.1 answer of known length to the client
// before the handler returns, then yields. ServeHTTP calls it last, once
// the upstream's in-flight count, the route's metrics and the access log
// have the request, so that a client that has its answer also sees it
// counted. The client cannot send its next request before it has this
// answer; yielding lets the other connections' work run meanwhile, so
// that the server's next read on this connection usually finds that
// request waiting instead of failing with EAGAIN and parking in the
// poller. The server's own flush at the end of the handler then has
// nothing left to write.
func sendNow(w http.ResponseWriter) {
	if _, ok := w.(*h1ResponseWriter); ok {
		return // the fast loop sends at the end of the request and yields then
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		runtime.Gosched()
	}
}

var errUpstreamRead = errors.New("reading upstream response")

func noCancel() {}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody copies a body of known length; the server flushes at the end.
func copyBody(w io.Writer, body io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, rerr := body.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("%w: %w", errUpstreamRead, rerr)
		}
	}
}

type chunk struct {
	buf *[]byte
	n   int
	err error
}

// copyStreaming relays a body of unknown length (gRPC, SSE, chunked) and
// flushes exactly when the upstream has nothing more ready: a stream's
// messages (and the response headers) reach the client at once, while a
// unary gRPC answer leaves in one write with its trailers instead of three.
// A reader goroutine makes "nothing more ready" observable.
func copyStreaming(w io.Writer, rc *http.ResponseController, body io.Reader) (int64, error) {
	chunks := make(chan chunk, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			bp := bufPool.Get().(*[]byte)
			nr, err := body.Read(*bp)
			select {
			case chunks <- chunk{bp, nr, err}:
			case <-done:
				bufPool.Put(bp)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var n int64
	pending := true // the response headers are written but not flushed
	for {
		var c chunk
		select {
		case c = <-chunks:
		default:
			// Let the reader (and the upstream connection's reader) run
			// once before concluding that nothing more is ready.
			runtime.Gosched()
			select {
			case c = <-chunks:
			default:
				if pending {
					if err := rc.Flush(); err != nil {
						return n, err
					}
					pending = false
				}
				c = <-chunks
			}
		}
		if c.n > 0 {
			nw, werr := w.Write((*c.buf)[:c.n])
			n += int64(nw)
			if werr != nil {
				bufPool.Put(c.buf)
				return n, werr
			}
			pending = true
		}
		bufPool.Put(c.buf)
		if c.err == io.EOF {
			return n, nil // the end of the handler flushes, with trailers
		}
		if c.err != nil {
			return n, fmt.Errorf("%w: %w", errUpstreamRead, c.err)
		}
	}
}

// trackedBody wraps the client's request body: it enforces max_body_bytes
// while streaming and records whether any byte was read (after which a
// failed attempt can no longer be retried).
type trackedBody struct {
	rc       io.ReadCloser
	limit    int64
	read     int64 // only touched by the transport's writer goroutine
	tooLarge atomic.Bool
	readAny  atomic.Bool
	// clientErr is set when the client's body itself was broken (bad
	// chunking, connection lost): not the upstream's fault.
	clientErr atomic.Bool
	// expired: the request's time-out ended the waits for the body
	// (expire).
	expired atomic.Bool
	whole   atomic.Bool // read to its end
	// For net/http's body, which cannot end its waits itself: conn (on
	// HTTP/1.1) renews its read deadline by idleWait (body_read_timeout)
	// while the body is read, and sets it in the past when the body
	// expires; else setDeadline sets the stream's read deadline, in the
	// past when it expires, else each read waiting idleWait at most (the
	// fast loop's and the HTTP/2 engine's bodies keep their own);
	// idled: a read waited that long.
	conn     *prefixConn
	watching bool // conn.watchBody ran (on the transport's writer goroutine)
	// try is the running attempt's try_timeout, stopped while a read
	// waits for the client (bodyTry); set before the attempt sends.
	// Atomic: a retry's attempt sets it while the last attempt's writer
	// might (were bodies read once retried) still be reading.
	try atomic.Pointer[bodyTry]
	// length is the body's declared length (0: unknown): a body read
	// that far is whole, whether or not its reader says EOF (the
	// transport stops there; the HTTP/2 engine's body says so only on
	// one more read).
	length int64
	// released: the request is over (release); no watch starts after.
	released    bool
	setDeadline func(time.Time)
	idleWait    time.Duration
	idled       atomic.Bool
	// dl orders the deadline's changes with the body's end: once whole,
	// the connection's read deadline is net/http's again (none), for its
	// read that watches for the client's close. A deadline left behind
	// would fail that read and cancel the request while its answer is
	// awaited or streamed.
	dl sync.Mutex
}

// idledOut reports whether the body paused past body_read_timeout.
func (b *trackedBody) idledOut() bool { return b != nil && b.idled.Load() }

// cutShort reports whether the request's time-out ended the body before
// its end: whatever the upstream answered, it answered a request it
// never got whole.
func (b *trackedBody) cutShort() bool {
	return b != nil && b.expired.Load() && !b.whole.Load()
}

// buffered is how much of the body a Read returns without waiting for
// the client, where the client's body can tell (the fast loop's); else 0.
func (b *trackedBody) buffered() int {
	if bb, ok := b.rc.(bufferedBody); ok {
		return bb.buffered()
	}
	return 0
}

// bufferedBody is a request body that tells how much of it is there.
type bufferedBody interface{ buffered() int }

func (b *trackedBody) Read(p []byte) (int, error) {
	if !b.readAny.Load() {
		b.readAny.Store(true)
	}
	if b.whole.Load() {
		return 0, io.EOF // and the deadline stays net/http's
	}
	switch {
	case b.idleWait <= 0:
	case b.conn != nil:
		if !b.watching {
			b.dl.Lock()
			if !b.expired.Load() && !b.whole.Load() && !b.released {
				b.watching = true
				b.conn.watchBody(b.idleWait)
			}
			b.dl.Unlock()
		}
	default:
		// net/http's body: its next read waits body_read_timeout at most.
		b.setDeadline(time.Now().Add(b.idleWait))
		if b.expired.Load() {
			b.setDeadline(time.Unix(1, 0)) // expire ran meanwhile
		}
	}
	if b.limit > 0 && int64(len(p)) > b.limit-b.read+1 {
		p = p[:b.limit-b.read+1]
	}
	try := b.try.Load()
	if try != nil {
		try.wait(true)
	}
	n, err := b.rc.Read(p)
	if try != nil {
		try.wait(false)
	}
	b.read += int64(n)
	if err == nil && b.length > 0 && b.read >= b.length {
		err = io.EOF // all there is; its reader may say so only on one more read
	}
	if err == io.EOF {
		b.dl.Lock()
		b.whole.Store(true)
		switch {
		case b.watching:
			b.conn.endBody(false)
		case b.setDeadline != nil && b.idleWait > 0:
			b.setDeadline(time.Time{})
		}
		b.dl.Unlock()
	}
	if err != nil && b.idleWait > 0 && !b.expired.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		err = errBodyIdle // net/http's body, past the deadline set above
	}
	if errors.Is(err, errBodyIdle) {
		b.idled.Store(true)
	}
	if err != nil && err != io.EOF {
		if b.expired.Load() || errors.Is(err, errBodyWaitExpired) {
			err = errBodyWaitExpired // however the body reported its end
		} else {
			b.clientErr.Store(true)
		}
	}
	if b.limit > 0 && b.read > b.limit {
		b.tooLarge.Store(true)
		return 0, errBodyTooLarge
	}
	return n, err
}

// Close is a no-op: the transport closes a request body when an attempt
// fails, but an untouched body must survive for the retry. The server
// closes the client's body when the handler returns.
func (b *trackedBody) Close() error { return nil }

// expire ends the client body's waits, when it can tell (expirableBody);
// b may be nil.
func (b *trackedBody) expire() {
	if b == nil {
		return
	}
	b.expired.Store(true)
	if eb, ok := b.rc.(expirableBody); ok {
		eb.expire()
	} else {
		b.dl.Lock()
		if !b.whole.Load() { // a whole body has no wait left to end
			switch {
			case b.conn != nil:
				b.conn.endBody(true) // and Read starts no watch after it
			case b.setDeadline != nil:
				b.setDeadline(time.Unix(1, 0))
			}
		}
		b.dl.Unlock()
	}
}

// setTry makes t the try_timeout the body's reads stop and restart.
func (b *trackedBody) setTry(t *bodyTry) { b.try.Store(t) }

// release ends the connection's watch of the body, if its request ends
// before the body did (an upstream answered without reading it all), so
// that net/http's own reads of the rest wait as net/http says.
func (b *trackedBody) release() {
	b.dl.Lock()
	b.released = true
	if b.watching && !b.whole.Load() && !b.expired.Load() {
		b.conn.endBody(false)
	}
	b.dl.Unlock()
}

// expirableBody is a client's request body whose waits for the client a
// time-out can end (the fast loop's and the HTTP/2 engine's).
type expirableBody interface{ expire() }

func (b *trackedBody) touched() bool { return b != nil && b.readAny.Load() }

// hopHeaders are meaningful for one connection only (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes hop-by-hop headers and those the Connection
// header names; keep is an Upgrade value to preserve ("" for none).
func removeHopHeaders(h http.Header, keep string) {
	if keep == "" && len(h) <= 16 {
		// Usually there is none: one pass over a small map beats nine
		// lookups.
		found := false
		for k := range h {
			if isHopHeader(k) {
				found = true
				break
			}
		}
		if !found {
			return
		}
	}
	for _, f := range h["Connection"] {
		for name := range connectionNames(f) {
			h.Del(name)
		}
	}
	for _, k := range hopHeaders {
		if _, ok := h[k]; ok {
			delete(h, k)
		}
	}
	if keep != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{keep}
	}
}

// stripHop removes an answer's hop-by-hop fields, knowing which it has.
func stripHop(h http.Header, hop hopFields) {
	switch hop {
	case hopNone:
	case hopConnectionOnly:
		delete(h, "Connection")
	default:
		removeHopHeaders(h, "")
	}
}

func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// outboundHeader is the request header sent upstream: the client's, minus
// hop-by-hop fields, plus X-Forwarded-*. "TE: trailers" survives because
// gRPC needs it end to end. client is the request's client when its peer
// is a trusted proxy (exchange.client), else "".
func outboundHeader(r *http.Request, upgrade, client string) http.Header {
	h := cloneHeader(r.Header, 4)
	teTrailers := false
	for _, v := range h["Te"] {
		if strings.Contains(strings.ToLower(v), "trailers") {
			teTrailers = true
		}
	}
	removeHopHeaders(h, upgrade)
	if teTrailers {
		h["Te"] = []string{"trailers"}
	}
	if ip := forwardedFor(r.RemoteAddr, client); ip != "" {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = []string{ip}
	}
	switch xfp := h["X-Forwarded-Proto"]; {
	case client != "" && len(xfp) > 0 && xfp[0] != "":
		// A trusted proxy's, which terminated the client's TLS (or not).
		h["X-Forwarded-Proto"] = xfp[:1:1]
	case clientTLS(r):
		h["X-Forwarded-Proto"] = protoHTTPS
	default:
		h["X-Forwarded-Proto"] = protoHTTP
	}
	// Set, not kept, even from a trusted proxy: a client's own
	// X-Forwarded-Host is whatever it likes, upstreams build links
	// (redirects, password resets) from it, and the usual proxies in front
	// (cloud load balancers, nginx's proxy_pass) keep Host and pass a
	// client's X-Forwarded-Host on unchanged. Behind them Host is right.
	h["X-Forwarded-Host"] = []string{r.Host}
	if _, ok := h["User-Agent"]; !ok {
		// Keep Go's transport from adding its own.
		h["User-Agent"] = emptyValue
	}
	return h
}

// forwardedFor is the address the lb appends to X-Forwarded-For: the
// peer's, or, when the peer is a trusted proxy, the client's that its
// X-Forwarded-For names (as nginx's real_ip module makes its
// $proxy_add_x_forwarded_for). The last hop is then the client for
// upstreams that read it as the address our proxy saw (auth.PeerAddr,
// the audit log), which would otherwise all see the proxy in front.
func forwardedFor(remoteAddr, client string) string {
	if client != "" {
		return client
	}
	ip, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return ""
	}
	return ip
}

// forwardHeader is outboundHeader without the copy when there is
// nothing to remove or merge but an HTTP/1.1 request's Connection naming
// no field (keep-alive, which browsers send, or close), no
// X-Forwarded-For yet and no trusted proxy in front: nearly every
// request. The X-Forwarded-* fields
// (and the empty User-Agent) are added to the client's header itself,
// which then goes upstream as it is. The handler owns r.Header, and
// nothing after this reads the added fields (the X-Request-Id added above
// is in both anyway) or the removed Connection (an HTTP/1.1 request's
// close is in r.Close; its keep-alive means nothing).
func forwardHeader(r *http.Request, upgrade, client string) http.Header {
	h := r.Header
	if upgrade != "" || h == nil || len(h) > 16 || client != "" {
		return outboundHeader(r, upgrade, client)
	}
	dropConn := false
	if x, ok := r.Context().(*h1ConnCtx); ok && x.reqHead != nil && r.ProtoMinor == 1 {
		// The fast loop's scan of the head found what the loop below
		// looks for (parseH1Head: relayable, so no hop-by-hop field but a
		// Connection naming none, no X-Forwarded-*), and whether there
		// was a Connection.
		dropConn = x.reqHead.hasConn
	} else {
		for k, vv := range h {
			if k == "Connection" && r.ProtoMajor == 1 && r.ProtoMinor == 1 && namesNoFields(vv) {
				dropConn = true
				continue
			}
			if isHopHeader(k) || k == "X-Forwarded-For" {
				return outboundHeader(r, upgrade, client)
			}
		}
	}
	if dropConn {
		delete(h, "Connection")
	}
	vals := make([]string, 2) // X-Forwarded-For's and -Host's, capped apart
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		vals[0] = ip
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	if clientTLS(r) {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
	vals[1] = r.Host // set, not kept (outboundHeader)
	h["X-Forwarded-Host"] = vals[1:2:2]
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue
	}
	return h
}

// Shared read-only values: outbound headers are only read by transports.
var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
	emptyValue = []string{""}
)

// cloneHeader copies h into a map sized for extra more keys, with all
// values in one backing array (two allocations, no map growth).
func cloneHeader(h http.Header, extra int) http.Header {
	n := 0
	for _, vv := range h {
		n += len(vv)
	}
	backing := make([]string, n)
	out := make(http.Header, len(h)+extra)
	for k, vv := range h {
		if vv == nil {
			out[k] = nil
			continue
		}
		m := copy(backing, vv)
		out[k] = backing[:m:m]
		backing = backing[m:]
	}
	return out
}

// upgradeType returns the protocol a request switches to where the lb
// relays the switch: WebSocket (RFC 6455), asked for on a GET. Any other
// Upgrade (h2c above all, which would open an HTTP/2 tunnel past the
// routes, limits and checks of later requests) is dropped with the
// other hop-by-hop fields, and the request goes on as a plain one, as
// nginx does.
func upgradeType(r *http.Request) string {
	if r.Method != http.MethodGet {
		return ""
	}
	for _, v := range r.Header["Connection"] {
		for sf := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(sf), "upgrade") {
				if up := strings.TrimSpace(r.Header.Get("Upgrade")); asciiEqualFold(up, "websocket") {
					return up
				}
				return ""
			}
		}
	}
	return ""
}

// writeError answers a request the proxy itself refuses. gRPC clients get
// a trailers-only response with a grpc-status, so they see a proper code
// (Unavailable, ResourceExhausted…) instead of an HTTP error.
func writeError(w http.ResponseWriter, r *http.Request, status int, code codes.Code, msg string) int {
	if isGRPCContentType(r.Header.Get("Content-Type")) {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(int(code)))
		h.Set("Grpc-Message", url.PathEscape(msg))
		w.WriteHeader(http.StatusOK)
		return status
	}
	http.Error(w, msg, status)
	return status
}
