package lb

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// h1Transport is the fast path for HTTP/1.1 upstream requests without a
// body (GET, HEAD, DELETE…, the bulk of proxied traffic). It runs the whole
// exchange on the calling goroutine over a pooled keep-alive connection,
// where net/http's Transport hands every request to a writer and a reader
// goroutine. Requests with a body or an Upgrade go to the full net/http
// Transport (fallback), which streams a body while reading the response.
type h1Transport struct {
	fallback    *http.Transport
	dialer      *net.Dialer
	maxIdle     int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // LIFO per upstream address
	closed bool
	// sweepArmed: a sweep is due (sweepIdle), armed by the first
	// connection put back after one found nothing left to watch.
	sweepArmed bool
}

// upstreamIdleTimeout is how long a connection to an upstream may carry
// nothing before the lb closes it (HTTP/1.1: idle in the pool; HTTP/2:
// with no stream open). A variable for tests.
var upstreamIdleTimeout = 90 * time.Second

// probeIdleAfter: connections idle longer than this are probed before
// reuse. Under load a connection is reused within microseconds and skips
// the probe; one that sat idle may have been closed by the upstream.
const probeIdleAfter = 50 * time.Millisecond

type h1Conn struct {
	t         *h1Transport
	addr      string
	nc        net.Conn
	nw        noWaitReader  // reads that do not wait
	br        *bufio.Reader // reads through the h1Conn (see Read)
	bw        *bufio.Writer // writes through the h1Conn (see Write)
	cw        io.Writer     // the connection's writer
	aw        *writeAwaiter // nil where unavailable
	answer    *answerWait   // its place in the answer poller; nil where none
	exchanges int           // requests written, for answerWait.sampleLoad
	stamps    upStamps      // -tags lbstamps only (stamps_on.go)
	idleAt    time.Time
	// bodiless: its last answer had no body by its kind (to a HEAD; 204,
	// 304), after which a faulty upstream may still send one, in a
	// packet of its own: such a connection is probed before its next
	// use, however soon (get), so that those bytes are not taken for the
	// next request's answer.
	bodiless bool

	// Set by roundTrip for the flush that sends a whole head at once:
	// that write waits for the answer too (writeAwaiter). writes counts
	// the others, which tell that a head went out in pieces, and written
	// their bytes (see Write).
	awaitNext bool
	writes    int
	written   int

	// The current exchange; touched only by the goroutine running it,
	// except aborted, which the context's callback sets.
	ctx     context.Context
	armed   bool
	hook    *h1ConnCtx // armed through the client connection's context
	stop    func() bool
	abortFn func()      // c.abort, made once
	armFn   func() bool // arms before Read's wait (noWaitReader.readWait)
	aborted atomic.Bool
}

func newH1Transport(cfg PoolConfig, fallback *http.Transport) *h1Transport {
	return &h1Transport{
		fallback:    fallback,
		dialer:      &net.Dialer{Timeout: time.Duration(cfg.DialTimeout), KeepAlive: 30 * time.Second},
		maxIdle:     cfg.MaxIdleConnsPerUpstream,
		idleTimeout: upstreamIdleTimeout,
		idle:        map[string][]*h1Conn{},
	}
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.native(req) {
		return t.fallback.RoundTrip(req)
	}
	hasBody := requestHasBody(req)
	for {
		c, reused, err := t.get(req.Context(), req.URL.Host, hasBody)
		if err != nil {
			return nil, err
		}
		res, sentNothing, err := c.roundTrip(req)
		if err == nil {
			return res, nil
		}
		aborted := c.aborted.Load()
		c.close()
		// A pooled connection may have been closed by the upstream while
		// idle; the request then never reached it. Try a fresh connection,
		// as net/http does, when that is safe: a body, once read, cannot
		// be sent again. An exchange its time-out aborted (the fast loop's
		// clock, which leaves the context alive) failed for that, not for a
		// dead connection: sent again, it went out on every idle
		// connection of the pool in turn.
		if reused && !aborted && req.Context().Err() == nil && (sentNothing || (idempotent(req) && !hasBody)) && isStaleConnError(err) {
			continue
		}
		return nil, err
	}
}

// native reports whether req takes the transport's own path rather than
// the fallback's. That path keeps nothing of req once its answer is read
// to the end (the proxy then reuses the request's storage).
func (t *h1Transport) native(req *http.Request) bool {
	return t.nativeParts(nativeBody(req.ContentLength, requestHasBody(req)), req.Header, req.URL.Scheme)
}

// requestHasBody reports whether an outbound request carries a body.
func requestHasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// nativeParts is native for a request yet to be made, whose body
// nativeBody takes (bodyOK), with header h, to a URL with scheme.
func (t *h1Transport) nativeParts(bodyOK bool, h http.Header, scheme string) bool {
	return bodyOK && headerGet(h, "Upgrade") == "" && scheme == "http"
}

// nativeBody reports whether the transport's own path takes a request
// with a body of length n (-1: unknown) or none (!hasBody): it takes a
// body of a known length up to nativeBodyMax, which it writes right
// after the head. Such a body always fits the sockets' buffers, so the
// write cannot block on an upstream that answers early without reading
// it (net/http's transport reads the answer while it writes, which
// larger bodies need).
func nativeBody(n int64, hasBody bool) bool {
	return !hasBody || (n > 0 && n <= nativeBodyMax)
}

// nativeBodyMax is the largest request body the transport's own path
// takes: an API call's JSON, not an image upload.
const nativeBodyMax = smallHead

func isStaleConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isConnReset(err)
}

func isConnReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op != "dial"
}

// get returns an idle connection to addr or dials one. For a request
// with a body (probe), every idle connection is probed first, however
// briefly idle: such a request cannot be sent again once it went out on
// a connection the upstream had closed (RoundTrip), as a bodiless
// idempotent one is.
func (t *h1Transport) get(ctx context.Context, addr string, probe bool) (*h1Conn, bool, error) {
	t.mu.Lock()
	stack := t.idle[addr]
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack[len(stack)-1] = nil
		stack = stack[:len(stack)-1]
		idleFor := time.Since(c.idleAt)
		if idleFor > t.idleTimeout {
			go c.close()
			continue
		}
		if (probe || c.bodiless || idleFor > probeIdleAfter) && !connAlive(c.nc) {
			// Closed by the upstream while idle (restart, idle time-out).
			go c.close()
			continue
		}
		t.idle[addr] = stack
		t.mu.Unlock()
		return c, true, nil
	}
	t.idle[addr] = stack
	t.mu.Unlock()
	if x, ok := ctx.(*h1ConnCtx); ok {
		var stop func()
		ctx, stop = x.dialContext() // the request's time-outs bound the dial
		defer stop()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c := &h1Conn{t: t, addr: addr, nc: nc, cw: newConnWriter(nc)}
	c.nw.init(nc)
	c.br = bufio.NewReaderSize(c, 16<<10)
	c.bw = bufio.NewWriterSize(c, 8<<10)
	c.abortFn = c.abort
	c.armFn = func() bool { c.arm(); return true }
	c.aw = newWriteAwaiter(nc, c.cw, c.arm)
	c.answer = answerPollerOf().watch(nc)
	return c, false, nil
}

func (t *h1Transport) put(c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if t.closed || len(t.idle[c.addr]) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	if !t.sweepArmed {
		t.sweepArmed = true
		time.AfterFunc(t.idleTimeout/2, t.sweepIdle)
	}
	t.mu.Unlock()
}

// sweepIdle closes the connections idle past idleTimeout. get closes
// such a connection only when it comes to it: without the sweep, those
// below a burst's worth in a stack, and every one to an upstream no
// longer picked (a reload removed it, or it is ejected), stayed open
// for good, in CLOSE_WAIT once the upstream gave up on them.
func (t *h1Transport) sweepIdle() {
	var old []*h1Conn
	t.mu.Lock()
	now := time.Now()
	for addr, stack := range t.idle {
		// The stack's bottom has been idle longest.
		n := 0
		for n < len(stack) && now.Sub(stack[n].idleAt) > t.idleTimeout {
			n++
		}
		if n == 0 {
			continue
		}
		old = append(old, stack[:n]...)
		if n == len(stack) {
			delete(t.idle, addr)
			continue
		}
		rest := copy(stack, stack[n:])
		clear(stack[rest:])
		t.idle[addr] = stack[:rest]
	}
	// Empty stacks stay (get keeps them, so that put appends without
	// allocating): the sweep goes on while one holds a connection.
	t.sweepArmed = false
	for _, stack := range t.idle {
		if len(stack) > 0 && !t.closed {
			t.sweepArmed = true
			break
		}
	}
	if t.sweepArmed {
		time.AfterFunc(t.idleTimeout/2, t.sweepIdle)
	}
	t.mu.Unlock()
	for _, c := range old {
		c.close()
	}
}

// keepOnly closes the idle connections to addresses not in addrs: a
// reload that keeps the transport dropped those upstreams (nil: all).
func (t *h1Transport) keepOnly(addrs []string) {
	t.mu.Lock()
	gone := takeOthers(t.idle, addrs)
	t.mu.Unlock()
	for _, stack := range gone {
		for _, c := range stack {
			c.close()
		}
	}
}

// takeOthers removes from m, and returns, the entries of addresses not
// in keep (what a reload removed).
func takeOthers[V any](m map[string]V, keep []string) []V {
	var gone []V
	for addr, v := range m {
		if !slices.Contains(keep, addr) {
			gone = append(gone, v)
			delete(m, addr)
		}
	}
	return gone
}

// CloseIdleConnections closes pooled connections; busy ones close when
// their exchange ends (put). The pool calls it once, as a reload retires
// the transport: nothing takes from its idle lists after that.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	t.closed = true // put closes what comes back from now on
	t.mu.Unlock()
	t.keepOnly(nil)
	t.fallback.CloseIdleConnections()
}

// roundTrip writes the request and reads the response head. sentNothing
// reports a failure before any byte went out.
func (c *h1Conn) roundTrip(req *http.Request) (res *http.Response, sentNothing bool, err error) {
	ctx := req.Context()
	if err := context.Cause(ctx); err != nil {
		return nil, true, err
	}
	c.ctx, c.stop, c.hook, c.armed = ctx, nil, nil, false
	c.aborted.Store(false)
	fail := func(err error) (*http.Response, bool, error) {
		c.disarm()
		if c.aborted.Load() {
			if cause := context.Cause(ctx); cause != nil {
				return nil, false, cause
			}
			if x, ok := ctx.(*h1ConnCtx); ok {
				if why := x.expiredCause(); why != nil {
					return nil, false, why // the clock's time-out
				}
			}
		}
		return nil, false, err
	}
	c.writes, c.written = 0, 0
	if ok, err := writeRequestHead(c.bw, req); err != nil {
		return fail(err)
	} else if !ok {
		if err := req.Write(c.bw); err != nil {
			return fail(err)
		}
	} else if req.ContentLength > 0 {
		// Read, the body cannot be sent again: not "nothing sent" from
		// here on, whatever the flush does.
		if err := c.writeBody(req.Body, req.ContentLength); err != nil {
			return fail(err)
		}
	}
	bodySent := requestHasBody(req)
	// A head that leaves in one write waits for the answer in that write,
	// without the read that would fail with EAGAIN first (writeAwaiter).
	// What the upstream sent before the write (readiness that the write's
	// RawConn.Read forgets) is then read only with what comes after it: a
	// FIN from an upstream that closed the idle connection is followed by
	// the reset the request provokes (TestH1TransportRetriesOn…), and
	// bytes sent unasked while idle come from a broken upstream, whose
	// exchange then ends with its answer, its close, try_timeout or the
	// client leaving, as with an upstream that never answers.
	awaited := c.writes == 0 && c.aw != nil
	c.awaitNext = awaited
	err = c.bw.Flush()
	c.awaitNext = false
	if err != nil {
		res, _, err := fail(err)
		return res, !bodySent, err
	}
	if !awaited {
		// The upstream cannot have answered yet, so reading now would cost
		// a read that fails with EAGAIN and a park in the poller. Under
		// load other goroutines are ready to run; letting them go first
		// gives the upstream time to answer, and the read below then
		// usually succeeds at once. Idle, Gosched returns immediately.
		runtime.Gosched()
	}
	x := borrowAnswer(ctx)
	for {
		res, err = readResponseInto(c.br, req, x)
		if err != nil {
			return fail(err)
		}
		if stampsOn {
			c.stamps.answerRead(c.nc, connCtxOf(ctx))
		}
		// Skip interim answers (103 Early Hints); 101 is only valid for an
		// upgrade, which never takes this path.
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if res.StatusCode < 100 {
			return fail(errStatusInvalid(res.StatusCode))
		}
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("upstream switched protocols without an upgrade request"))
	}
	keep := !res.Close && !req.Close
	var head *answerHead // for respond (relayHead), when parsed here and relayable
	if x.hop != hopUnknown && x.head.relayable {
		head = &x.head
	}
	c.bodiless = req.Method == http.MethodHead || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified
	if res.Body == http.NoBody || res.Body == nil {
		c.release(keep)
		if res.Body == http.NoBody && head != nil {
			// An empty answer parsed here: its body is over already, but
			// respond takes its hop-by-hop verdict and its head from one.
			x.conn = h1Body{rc: http.NoBody, done: true, hop: x.hop, head: head}
			res.Body = &x.conn
		}
		return res, false, nil
	}
	x.conn = h1Body{rc: res.Body, c: c, keep: keep, hop: x.hop, head: head}
	res.Body = &x.conn
	return res, false, nil
}

// writeBody writes a request body of n bytes into the connection's
// writer, reading it straight into the writer's buffer. A body that ends
// before n bytes is the client's fault (io.ErrUnexpectedEOF); bytes past
// n are not read. Before a read that may wait for the client (the body
// has none of it buffered, or cannot tell), what is written so far goes
// out: the upstream sees a slow client's request as it comes, as with
// net/http's transport, not once it is whole.
func (c *h1Conn) writeBody(body io.Reader, n int64) error {
	for n > 0 {
		mayWait := true
		if bb, ok := body.(bufferedBody); ok {
			mayWait = bb.buffered() == 0
		}
		if c.bw.Available() == 0 || (mayWait && c.bw.Buffered() > 0) {
			if err := c.bw.Flush(); err != nil {
				return err
			}
		}
		buf := c.bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), n)]
		m, err := body.Read(buf)
		c.bw.Write(buf[:m]) // into the buffer it already is in
		n -= int64(m)
		switch {
		case n == 0:
			return nil
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		}
	}
	return nil
}

// borrowAnswer returns storage for an upstream answer: for a request of
// the fast loop (its context is the connection's), the storage its last
// request gave back once nothing could hold it any more (recycle), else a
// new one.
func borrowAnswer(ctx context.Context) *h1Response {
	x, ok := ctx.(*h1ConnCtx)
	if !ok {
		return new(h1Response)
	}
	a := x.answer // cleared by recycle but for its empty header map
	if a == nil {
		a = new(h1Response)
	} else {
		x.answer = nil
	}
	x.lent = a
	return a
}

// smallHead is a request head that always fits a socket's send buffer.
const smallHead = 16 << 10

// arm makes the exchange's blocking I/O cancellable: when its context ends
// (client gone, time-out) the deadline expires at once and the connection
// is not reused. It is armed only before I/O that may block, because
// registering with the context costs ~1 µs and five allocations, more
// than the rest of a keep-alive exchange's bookkeeping; the fast loop's
// connection context (h1ConnCtx) takes the registration without them.
func (c *h1Conn) arm() {
	if c.armed {
		return
	}
	c.armed = true
	if x, ok := c.ctx.(*h1ConnCtx); ok && x.setAbort(c.abortFn) {
		c.hook = x
		return
	}
	c.stop = context.AfterFunc(c.ctx, c.abortFn)
}

func (c *h1Conn) abort() {
	c.aborted.Store(true)
	c.nc.SetDeadline(time.Unix(1, 0))
	if c.answer != nil {
		c.answer.wake() // its read then reports the deadline
	}
}

// disarm reports whether the exchange ended without being aborted.
func (c *h1Conn) disarm() bool {
	if !c.armed {
		return true
	}
	c.armed = false
	if c.hook != nil {
		x := c.hook
		c.hook = nil
		return x.clearAbort()
	}
	return c.stop()
}

// release ends an exchange: the connection goes back to the pool when it
// is clean, else it is closed. Bytes already read past the answer (a
// body an upstream sent with a HEAD or 204 answer, an unsolicited answer)
// would be taken for the next request's answer: such a connection is
// closed too, as net/http's Transport does.
func (c *h1Conn) release(keep bool) {
	if !c.disarm() || c.aborted.Load() || !keep || c.br.Buffered() > 0 {
		c.close()
		return
	}
	c.ctx = nil
	c.t.put(c)
}

// Read is what the connection's bufio.Reader reads from. It first tries a
// read that cannot block; only when nothing is there yet does it arm
// cancellation and wait (readWait: without a second, doomed read before
// the wait). Every wait is thus cancellable, while an answer that is
// already there costs no registration.
func (c *h1Conn) Read(p []byte) (int, error) {
	if n, _, _, ok, err := c.nw.readWait(p, c.armFn); ok {
		return n, err
	}
	c.arm()
	return c.nc.Read(p)
}

// Write is what the connection's bufio.Writer writes to. A head larger
// than smallHead may fill the socket buffer and block on an upstream that
// stopped reading: its writes past that much are made cancellable.
func (c *h1Conn) Write(p []byte) (int, error) {
	if c.awaitNext {
		c.awaitNext = false
		if c.answer != nil {
			if c.exchanges++; c.exchanges%sampleExchanges == 0 {
				c.answer.sampleLoad()
			}
			if c.answer.enter() {
				return c.writeAwaitAnswer(p)
			}
		}
		return c.aw.writeAwait(p)
	}
	c.writes++
	c.written += len(p)
	if c.written > smallHead {
		c.arm()
	}
	return c.cw.Write(p)
}

// writeAwaitAnswer writes a whole request and waits in the answer poller
// until the answer came (or an abort): the read that follows then finds
// it. Readiness seen before the request left is an earlier exchange's.
// The caller entered the poller (answerWait.enter); this leaves it.
func (c *h1Conn) writeAwaitAnswer(p []byte) (int, error) {
	defer c.answer.leave()
	c.answer.forget()
	n, err := c.cw.Write(p)
	if err != nil {
		return n, err
	}
	c.arm()
	c.answer.wait()
	return n, nil
}

// close closes the connection and takes it out of the answer poller.
func (c *h1Conn) close() {
	c.answer.forgetConn()
	c.nc.Close()
}

// h1Body returns its connection to the pool once read to the end.
//
// Close may come while a Read waits on another goroutine (copyStreaming's
// reader, when the client went away mid-stream): mu orders them, and such
// a Close only aborts the read, which then closes the connection itself,
// so that the connection is released or closed once, by one of them.
type h1Body struct {
	rc      io.ReadCloser
	c       *h1Conn
	keep    bool
	mu      sync.Mutex
	done    bool
	reading bool        // a Read is in rc.Read
	closing bool        // Close came during it: the read ends the connection
	hop     hopFields   // the answer's hop-by-hop fields, for respond (stripHop)
	head    *answerHead // the head as it came, when it may be relayed so (relayHead)
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return 0, io.EOF
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	switch {
	case b.closing:
		b.abandonLocked()
		if err == nil || err == io.EOF {
			err = http.ErrBodyReadAfterClose
		}
	case err == io.EOF:
		b.done = true
		b.c.release(b.keep)
	case err != nil:
		b.abandonLocked()
	}
	return n, err
}

// abandonLocked ends the body short of its end: its connection carries
// nothing more. b.mu held.
func (b *h1Body) abandonLocked() {
	b.done = true
	b.c.disarm()
	b.c.close()
}

// Close before the end abandons the connection: draining an unknown rest
// could take long.
func (b *h1Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.done || b.closing:
	case b.reading:
		b.closing = true
		b.c.abort() // the Read returns and closes the connection
	default:
		b.abandonLocked()
	}
	return nil
}

var _ http.RoundTripper = (*h1Transport)(nil)
