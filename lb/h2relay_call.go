package lb

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// relayCall is one gRPC call through the frame relay: the same routing
// and admission as ServeHTTP, then the client's stream (down) relayed to
// a stream on an upstream connection (up). Its events come from the
// reader goroutines of both connections (and a timer); mu orders them.
// Lock order: relayCall.mu, then upAddr.mu, then one h2conn.mu at a time.
type relayCall struct {
	mu sync.Mutex
	s  *Server
	st *state
	ro *route
	// pool is set once the call holds a place in the pool's pending count.
	pool *Pool

	down    leg
	upFirst leg
	up      *leg      // the open upstream stream; nil while none is
	u       *Upstream // the upstream of the current attempt

	fields     []hpack.HeaderField   // the client's request headers
	fieldsBuf  [10]hpack.HeaderField // their storage, for what grpc-go sends
	host, path string
	reqID, xff string
	// client is the call's client when its peer is a trusted proxy
	// (exchange.client), fwdProto that proxy's X-Forwarded-Proto, which
	// goes upstream as it came (outboundHeader).
	client, fwdProto string
	start, tryStart  time.Time
	triedBuf         [4]*Upstream
	tried            []*Upstream
	hashReq          *httpRequestForHash
	attempts, maxTry int
	unsent           []byte // request bytes not yet given to an upstream stream
	unsentNoCredit   int    // leading bytes of unsent credited before (a retry's resend)
	sent             []byte // request bytes given to upstream, kept for a retry
	sentLost         bool   // more was sent than kept: no retry any more
	reqEnd           bool
	total            int64
	respStarted      bool // the upstream answered: no retry any more
	hdrsSent         bool // response headers went to the client
	timer            *time.Timer
	finished         bool
	status           int
	code             codes.Code
	err              error
	lastUpstream     string
}

// relayRetainLimit bounds the request bytes kept to resend when an
// upstream refuses a stream; larger requests are not retried after
// their first bytes left.
const relayRetainLimit = 64 << 10

var (
	errUpstreamGoAway    = errors.New("upstream refused the stream (GOAWAY)")
	errUpstreamRefused   = errors.New("upstream refused the stream")
	errUpstreamNoStreams = errors.New("upstream takes no streams now (MAX_CONCURRENT_STREAMS 0)")
	// errClientNotReading: the call's client connection held more
	// answer bytes than h2HoldLimit.
	errClientNotReading = errors.New("client connection holds too many unread answer bytes")
	errUpstreamClosed   = errors.New("upstream connection closed")
	errRouteTimeout     = errors.New("route timeout")
)

// begin routes and admits a new call, st and ro being its config
// generation and route (relayRoute; ro nil: none), then opens its first
// attempt.
func (r *relayCall) begin(f *h2hdrs, st *state, ro *route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		// The connection ended between the stream's registration and
		// here (its writer failed): there is no call to run.
		return
	}
	s := r.s
	r.start = time.Now()
	r.st = st
	r.status = 200
	r.fields = fieldsCopy(r.fieldsBuf[:0], f.Fields) // f.Fields is the reader's
	var prior string
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":path":
			r.path = hf.Value
		case ":authority":
			r.host = hf.Value
		case "x-request-id":
			r.reqID = hf.Value
		case "x-forwarded-for":
			if prior == "" {
				prior = hf.Value
			} else {
				prior += ", " + hf.Value
			}
		}
	}
	if r.reqID == "" || len(r.reqID) > 200 {
		r.reqID = newRequestID()
	}
	r.xff = r.down.c.remoteIP
	if peer := r.down.c.peer; st.trust.trusts(peer) && !r.down.c.engine.l.cfg.ProxyProtocol { // forwardedTrusted
		r.client = st.trust.client(peer, []string{prior}).String()
		r.xff = r.client // forwardedFor
		r.fwdProto = fieldValue(f.Fields, "x-forwarded-proto")
	}
	if prior != "" {
		r.xff = prior + ", " + r.xff
	}
	// (A request that is no gRPC call never gets here: see
	// relayRoute.)
	if f.Truncated {
		r.answerHTTPLocked(http.StatusRequestHeaderFieldsTooLarge)
		return
	}

	if ro == nil {
		s.noRoute.Inc()
		r.status = 404
		r.failLocked(codes.Unimplemented, "no route for this request", outcomeSuccess)
		return
	}
	r.ro = ro
	if ro.limiter != nil {
		key := ""
		if ro.limiter.header != "" {
			if v := fieldValue(f.Fields, strings.ToLower(ro.limiter.header)); v != "" {
				key = "k:" + v
			}
		}
		if key == "" && r.client != "" {
			key = ipKey(r.client)
		}
		if key == "" {
			key = r.down.c.rateKey
		}
		if ok, _ := ro.limiter.allow(key, time.Now()); !ok {
			ro.metrics.reject("rate_limit")
			r.status = 429
			r.failLocked(codes.ResourceExhausted, "rate limit exceeded", outcomeSuccess)
			return
		}
	}
	pool := ro.pool
	if !pool.admit() {
		ro.metrics.reject("circuit_open")
		r.status = 503
		r.failLocked(codes.Unavailable, "upstream pool is saturated", outcomeSuccess)
		return
	}
	r.pool = pool
	pool.budget.request()
	if t := time.Duration(ro.cfg.Timeout); t > 0 {
		r.timer = time.AfterFunc(t, r.onTimeout)
	}
	if ch, ok := pool.picker.(*ConsistentHash); ok {
		r.hashReq = newHashRequest(ch.header, fieldValue(f.Fields, strings.ToLower(ch.header)))
	}
	r.tried = r.triedBuf[:0]
	r.maxTry = 1 + *ro.cfg.Retries
	if r.down.recvEnd {
		r.reqEnd = true
	}
	r.attemptLocked()
}

func fieldValue(fields []hpack.HeaderField, name string) string {
	for _, hf := range fields {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// attemptLocked picks an upstream and opens a stream to it, at once when
// a connection has room, else after a dial on another goroutine (the
// reader must not wait for a connect).
func (r *relayCall) attemptLocked() {
	pool := r.ro.pool
	u := pool.picker.Pick(r.hashReq.request(), pool.upstreams, r.tried)
	if u == nil {
		r.status = 503
		r.ro.metrics.reject("no_upstream")
		r.failLocked(codes.Unavailable, "no upstream available", outcomeSuccess)
		return
	}
	r.tried = append(r.tried, u)
	r.attempts++
	r.u, r.lastUpstream = u, u.Addr
	u.inflight.Add(1)
	if r.attempts == 1 {
		r.tryStart = r.start // a clock read less per call
	} else {
		r.tryStart = time.Now()
	}
	a := pool.grpc.forAddr(u.Addr, time.Duration(pool.cfg.DialTimeout), pool.cfg.Keepalive)
	if a == nil {
		r.upFailedLocked(false, errPoolClosed)
		return
	}
	l := &r.upFirst
	if r.attempts > 1 {
		l = &leg{}
	}
	if a.open(r, l) {
		r.openedLocked(l)
		return
	}
	go r.dialAndOpen(a, l)
}

func (r *relayCall) dialAndOpen(a *upAddr, l *leg) {
	defer func() {
		if p := recover(); p != nil {
			r.s.log.Error("gRPC relay dial panicked", "panic", p)
		}
	}()
	var err error
	for range relayDialRounds {
		if a.takesNoStreams() {
			// More connections would be told the same: a refusal,
			// retried on another upstream if there is one.
			err = errUpstreamNoStreams
			break
		}
		if err = a.dial(r.s.log); err != nil {
			break
		}
		r.mu.Lock()
		if r.finished {
			r.mu.Unlock()
			return
		}
		if a.open(r, l) {
			r.openedLocked(l)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		// The dial this call waited on was another's, and the calls
		// that waited with it filled its connection (a burst on a cold
		// pool): dial one more.
		err = errUpstreamRefused
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.finished {
		r.upFailedLocked(true, err)
	}
}

// relayDialRounds bounds the dials one call makes or waits for: each adds
// a connection, so a burst of up to that many connections' worth of calls
// (100 streams each, by default) finds room.
const relayDialRounds = 8

// openedLocked starts using the new upstream stream l: the request bytes
// that waited go out.
func (r *relayCall) openedLocked(l *leg) {
	r.up = l
	dc := r.down.c
	dc.mu.Lock()
	r.down.src = l
	dc.mu.Unlock()
	if len(r.unsent) == 0 && (!r.reqEnd || l.sentEnd) {
		return
	}
	p, noCredit := r.unsent, r.unsentNoCredit
	r.unsent, r.unsentNoCredit = nil, 0
	r.retainLocked(p)
	uc := l.c
	uc.mu.Lock()
	freed := uc.sendLocked(l, p, noCredit, r.reqEnd)
	uc.unlock()
	dc.credit(&r.down, freed)
}

// retainLocked keeps request bytes that went upstream for a retry.
func (r *relayCall) retainLocked(p []byte) {
	if r.sentLost || r.respStarted || len(p) == 0 {
		return
	}
	if len(r.sent)+len(p) > relayRetainLimit {
		r.sent, r.sentLost = nil, true
		return
	}
	if r.sent == nil {
		r.sent = p[:len(p):len(p)] // unsent is not used again
		return
	}
	r.sent = append(r.sent, p...)
}

// upFailedLocked ends the current attempt as a gateway failure; a
// refused stream (nothing reached the upstream) is retried elsewhere
// when the route's retries and the retry budget allow.
func (r *relayCall) upFailedLocked(refused bool, err error) {
	if r.up != nil {
		uc := r.up.c
		uc.mu.Lock()
		uc.resetLocked(r.up, http2.ErrCodeCancel)
		uc.unlock()
		r.up = nil
	}
	u := r.u
	r.u = nil
	u.inflight.Add(-1)
	if !errors.Is(err, errPoolClosed) { // the lb's own reload, not the upstream's fault
		r.pool.recordOutcome(u, outcomeGatewayFailure)
	}
	if refused && !r.respStarted && !r.sentLost && r.attempts < r.maxTry && canRetry(r.pool.upstreams, r.tried) && r.pool.budget.tryRetry() {
		r.ro.metrics.retries.Inc()
		if len(r.sent) > 0 {
			r.unsent = append(r.sent, r.unsent...)
			r.unsentNoCredit += len(r.sent)
			r.sent = nil
		}
		r.attemptLocked()
		return
	}
	r.status = 502
	r.err = err
	r.failLocked(codes.Unavailable, err.Error(), outcomeGatewayFailure)
}

// onClientData relays request bytes (and the request's end) upstream.
func (r *relayCall) onClientData(d *leg, data []byte, end bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		d.c.credit(nil, len(data))
		return
	}
	r.total += int64(len(data))
	if max := int64(r.ro.cfg.MaxBodyBytes); max > 0 && r.total > max {
		r.ro.metrics.reject("body_too_large")
		r.status = 413
		r.err = errBodyTooLarge
		r.stopUpLocked()
		r.failLocked(codes.ResourceExhausted, "request messages exceed max_body_bytes", outcomeSuccess)
		d.c.credit(nil, len(data))
		return
	}
	if end {
		r.reqEnd = true
	}
	up := r.up
	if up == nil {
		r.unsent = append(r.unsent, data...) // credited once it leaves
		return
	}
	if !r.sentLost && !r.respStarted && len(data) > 0 {
		if len(r.sent)+len(data) > relayRetainLimit {
			r.sent, r.sentLost = nil, true
		} else {
			r.sent = append(r.sent, data...)
		}
	}
	uc := up.c
	uc.mu.Lock()
	freed := uc.sendLocked(up, data, 0, end)
	uc.unlock()
	d.c.credit(d, freed)
}

// onClientGone: the client reset the stream or its connection ended.
func (r *relayCall) onClientGone() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	r.stopUpLocked()
	r.status = 499
	r.code = codes.Canceled
	r.finishLocked(outcomeSuccess)
}

// stopUpLocked cancels the upstream stream, if one is open.
func (r *relayCall) stopUpLocked() {
	if r.up == nil {
		return
	}
	uc := r.up.c
	uc.mu.Lock()
	uc.resetLocked(r.up, http2.ErrCodeCancel)
	uc.unlock()
	r.up = nil
}

func (r *relayCall) onTimeout() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	r.stopUpLocked()
	r.status = 504
	r.err = errRouteTimeout
	r.failLocked(codes.DeadlineExceeded, "route timeout exceeded", outcomeSuccess)
}

// onUpHeaders relays the upstream's response headers or trailers.
func (r *relayCall) onUpHeaders(l *leg, f *h2hdrs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished || l != r.up {
		return
	}
	end := f.StreamEnded()
	dc := r.down.c
	if !r.respStarted {
		st := f.PseudoValue("status")
		if len(st) == 3 && st[0] == '1' && !end {
			return // informational
		}
		r.respStarted, r.sent = true, nil
		lat := time.Since(r.tryStart)
		r.u.observeLatency(lat)
		r.u.metrics.latency.Observe(lat.Seconds())
		if n, err := strconv.Atoi(st); err == nil {
			r.status = n
		}
		dc.mu.Lock()
		if !r.down.closed && !dc.closed {
			dc.encodePassLocked(f.Fields, true, "x-request-id")
			dc.field("x-request-id", r.reqID, true)
			dc.writeHeaderBlockLocked(r.down.id, end)
			if end {
				dc.sentEndLocked(&r.down)
			}
		}
		dc.unlock()
		r.hdrsSent = true
		if !end {
			return
		}
	} else {
		if !end {
			// A second header block must end the stream.
			r.stopUpLocked()
			r.failLocked(codes.Internal, "upstream sent headers twice", outcomeSuccess)
			return
		}
		dc.mu.Lock()
		dc.trailersLocked(&r.down, f.Fields)
		dc.unlock()
	}
	r.code = codes.Unknown
	if v := fieldValue(f.Fields, "grpc-status"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			r.code = codes.Code(n)
		}
	}
	// The answer is complete: a request still being sent is cut short.
	r.stopUpLocked()
	o := outcomeSuccess
	if r.code == codes.Unavailable {
		o = outcomeGatewayFailure
	}
	r.finishLocked(o)
}

// onUpData relays response bytes to the client.
func (r *relayCall) onUpData(l *leg, data []byte, end bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished || l != r.up {
		l.c.credit(nil, len(data))
		return
	}
	if !r.respStarted {
		// DATA before response headers: a broken upstream.
		r.stopUpLocked()
		l.c.credit(nil, len(data))
		r.err = errors.New("upstream sent DATA before HEADERS")
		r.failLocked(codes.Internal, r.err.Error(), outcomeSuccess)
		return
	}
	dc := r.down.c
	dc.mu.Lock()
	freed := dc.sendLocked(&r.down, data, 0, end)
	full := dc.held > h2HoldLimit
	if full {
		dc.resetLocked(&r.down, http2.ErrCodeEnhanceYourCalm)
	}
	dc.unlock()
	if full {
		// The client's connection holds too much it does not read (see
		// h2HoldLimit): this call ends, with what it held.
		r.stopUpLocked()
		r.ro.metrics.reject("client_not_reading")
		r.code = codes.ResourceExhausted
		r.err = errClientNotReading
		r.finishLocked(outcomeSuccess)
		return
	}
	if end {
		// No trailers: not a valid gRPC response, but the client decides.
		// A request still being sent is cut short, or the stream would
		// hold a place on the upstream connection for good.
		r.stopUpLocked()
		r.code = codes.Internal
		r.finishLocked(outcomeSuccess)
	}
	l.c.credit(l, freed)
}

// onUpReset: the upstream reset the stream. A refusal before any answer
// is retried; otherwise the client's stream is reset the same way (or,
// before response headers, answered with the matching gRPC status).
func (r *relayCall) onUpReset(l *leg, code http2.ErrCode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished || l != r.up {
		return
	}
	r.up = nil
	if code == http2.ErrCodeRefusedStream && !r.respStarted {
		r.upFailedLocked(true, errUpstreamRefused)
		return
	}
	r.err = errors.New("upstream reset the stream: " + code.String())
	if !r.hdrsSent {
		c := codes.Internal
		if code == http2.ErrCodeCancel {
			c = codes.Canceled
		}
		r.failLocked(c, r.err.Error(), outcomeSuccess)
		return
	}
	dc := r.down.c
	dc.mu.Lock()
	dc.resetLocked(&r.down, code)
	dc.unlock()
	r.code = codes.Internal
	r.finishLocked(outcomeSuccess)
}

// onUpGone: the upstream connection ended (refused: the stream was above
// its GOAWAY's last stream and never reached it).
func (r *relayCall) onUpGone(l *leg, refused bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished || l != r.up {
		return
	}
	r.up = nil
	if err == nil || errors.Is(err, errRelayStopped) {
		err = errUpstreamClosed
	}
	if refused && !r.respStarted {
		r.upFailedLocked(true, err)
		return
	}
	r.status = 502
	r.err = err
	r.failLocked(codes.Unavailable, "upstream connection closed", outcomeGatewayFailure)
}

// failLocked answers the client with a gRPC status from the relay itself
// (trailers-only before response headers, trailers after) and ends the
// call.
func (r *relayCall) failLocked(code codes.Code, msg string, o outcome) {
	d := &r.down
	dc := d.c
	dc.mu.Lock()
	if !d.closed && !d.sentEnd && !dc.closed {
		if !r.hdrsSent {
			dc.field(":status", "200", false)
			dc.field("content-type", "application/grpc", false)
			dc.field("grpc-status", strconv.Itoa(int(code)), false)
			dc.field("grpc-message", grpcMessageEncode(msg), false)
			dc.field("x-request-id", r.reqID, true)
			dc.writeHeaderBlockLocked(d.id, true)
			dc.sentEndLocked(d)
		} else {
			dc.trailersLocked(d, []hpack.HeaderField{
				{Name: "grpc-status", Value: strconv.Itoa(int(code))},
				{Name: "grpc-message", Value: grpcMessageEncode(msg)},
			})
		}
	}
	dc.unlock()
	r.hdrsSent = true
	r.code = code
	r.finishLocked(o)
}

// answerHTTPLocked refuses a request that is not a gRPC call with a bare
// HTTP status.
func (r *relayCall) answerHTTPLocked(status int) {
	d := &r.down
	dc := d.c
	dc.mu.Lock()
	if !d.closed && !dc.closed {
		dc.field(":status", strconv.Itoa(status), false)
		dc.writeHeaderBlockLocked(d.id, true)
		dc.sentEndLocked(d)
	}
	dc.unlock()
	r.hdrsSent = true
	r.status = status
	r.code = codes.Unknown
	r.finishLocked(outcomeSuccess)
}

// finishLocked books the ended call: attempt outcome, pool count,
// metrics, access log.
func (r *relayCall) finishLocked(o outcome) {
	if r.finished {
		return
	}
	r.finished = true
	if r.st == nil {
		return // gone before begin: nothing was routed, admitted or sent
	}
	// Bytes held for an upstream stream that never came (a dial that
	// failed, a time-out, the client gone meanwhile) will not leave: the
	// client's connection gets their credit now, or its window shrinks
	// by them for good.
	if n := len(r.unsent) - r.unsentNoCredit; n > 0 {
		r.down.c.credit(nil, n)
	}
	r.unsent, r.sent = nil, nil
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.u != nil {
		r.u.inflight.Add(-1)
		r.pool.recordOutcome(r.u, o)
		r.u = nil
	}
	if r.pool != nil {
		r.pool.done()
	}
	d := time.Since(r.start)
	if r.ro != nil {
		r.ro.metrics.observe(r.status, d)
	}
	if r.st.accessLog {
		ex := exchange{route: r.ro, client: r.client, upstream: r.lastUpstream, status: r.status, attempts: r.attempts, err: r.err}
		r.s.logGRPCAccess(r.path, r.host, r.down.c.remoteAddr, r.reqID, fieldValue(r.fields, "traceparent"), &ex, r.code, d)
	}
}

// grpcMessageEncode percent-encodes a grpc-message value (gRPC over
// HTTP/2: bytes outside printable ASCII, and '%').
func grpcMessageEncode(msg string) string {
	ok := true
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < ' ' || c > '~' || c == '%' {
			ok = false
			break
		}
	}
	if ok {
		return msg
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < ' ' || c > '~' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
