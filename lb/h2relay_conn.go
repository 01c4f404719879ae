package lb

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn is one HTTP/2 connection of the frame relay, either a client's
// (server side) or one to an upstream (client side). One goroutine reads
// and dispatches frames; writers append frames to a buffer under mu and a
// second goroutine writes the buffer out whenever it is woken, so frames
// of many streams (and of both directions' bookkeeping) share one write
// system call. Flow control follows RFC 9113 section 5.2 in both
// directions: DATA waits in its stream's queue for the peer's credit, and
// what a peer sent is credited back only once it has been handed to the
// other side, so a slow reader holds back its writer instead of the relay
// buffering without bound. One exception: an upstream connection carries
// the calls of many clients, so its connection-level window is given back
// as soon as DATA arrives (the stream's only once the bytes leave). What
// waits for a client that does not read is then bounded by its streams'
// windows and, per client connection, by h2HoldLimit, and never holds
// back the other calls on the upstream connection.

const (
	// h2StreamWindow and h2ConnWindow are the receive windows the relay
	// advertises: generous, so unary calls never wait for credit, and they
	// bound what one connection can make the relay hold.
	h2StreamWindow = 1 << 20
	h2ConnWindow   = 16 << 20
	// h2UpStreamWindow is the stream window the relay gives upstreams:
	// what one stream's answer may queue for a client that reads slower
	// than its upstream sends (see h2HoldLimit). A quarter of a client's
	// keeps 64 such streams per client connection within the limit.
	h2UpStreamWindow = 256 << 10
	// h2MaxStreams is the MAX_CONCURRENT_STREAMS offered to clients.
	h2MaxStreams = 1000
	// h2MaxFrame is HTTP/2's default frame size, which the relay keeps
	// for what it reads; it writes up to the peer's limit.
	h2MaxFrame = 16384
	// h2KeepBuf caps the write buffer kept for reuse between batches.
	h2KeepBuf = 256 << 10
	// h2WriteTimeout ends a connection whose peer stopped reading.
	h2WriteTimeout = 30 * time.Second
	// h2WriteBufLimit bounds the DATA waiting in a connection's write
	// buffer: a peer may grant huge windows and then not read, and
	// credit for what the relay buffered would let the other side send
	// on. Past it, DATA waits in its stream's queue (uncredited) until
	// the writer has written a batch. Control frames past twice the
	// limit are a flood (PING, SETTINGS) and end the connection.
	h2WriteBufLimit = 2 << 20
	// h2HoldLimit bounds the answer bytes the relay holds for one client
	// connection (DATA its peer's windows do not let out yet). Each of
	// its streams may hold up to h2UpStreamWindow, the window the relay
	// gives the upstream per stream; a client past the limit has more
	// than 64 streams it reads slower than their upstreams send, or not
	// at all, and the stream whose DATA crossed it is reset
	// (ENHANCE_YOUR_CALM, which gRPC clients read as RESOURCE_EXHAUSTED).
	h2HoldLimit = h2ConnWindow
	// h2MaxWindow is the largest legal flow-control window.
	h2MaxWindow = 1<<31 - 1
	// h2ResetBurst and h2ResetRate bound the streams a client may cancel
	// (RST_STREAM before the call ended) or have refused: a leaky bucket
	// that holds h2ResetBurst and drains h2ResetRate a second. Each such
	// stream may have cost an upstream stream and a reset, so a client
	// past it is a rapid-reset attack (CVE-2023-44487) and its connection
	// ends with GOAWAY ENHANCE_YOUR_CALM. The burst lets every stream the
	// client may have open at once (h2MaxStreams) be cancelled together,
	// twice, as when an overloaded upstream makes all deadlines expire.
	// Every call the relay answers in full drains one more, so a busy
	// client that cancels some of its calls (deadlines) is never cut
	// off, while one whose streams are mostly reset is.
	h2ResetBurst = 2 * h2MaxStreams
	h2ResetRate  = 100
)

// h2wbuf collects the frames of one batch.
type h2wbuf struct{ b []byte }

func (w *h2wbuf) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// h2credit is flow-control credit owed to the sender of a leg's bytes.
type h2credit struct {
	l *leg
	n int
}

type h2conn struct {
	nc     net.Conn
	out    io.Writer // nc, or its raw-syscall writer
	br     *bufio.Reader
	fr     *http2.Framer // ReadFrame on the reader goroutine; writes under mu
	server bool
	log    *slog.Logger
	// remoteAddr is the client's address, made once for the access log
	// of every call (server side); remoteIP is it without port, rateKey
	// its key for key: ip rate limits (ipKey).
	remoteAddr, remoteIP, rateKey string
	peer                          netip.Addr // remoteIP, for trusted_proxies
	balancerTLS                   bool       // server side: see h1ConnCtx.balancerTLS
	srv                           *Server    // server side: whose routes the calls use
	engine                        *h2Relay   // server side: the engine that serves it
	// serve: a TLS listener's client connection (h2serve.go, serveHTTP),
	// whose streams are mostly HTTP requests: its writer batches their
	// answers, it offers fewer streams and a smaller window. On every
	// server-side connection, HTTP requests go to ServeHTTP and gRPC
	// calls to h2c pools to the relay (relayRoute); reqTemplate is what
	// the HTTP requests share, canon the field names seen (canonicalName).
	serve       bool
	reqTemplate *http.Request
	canon       map[string]string
	// kits: storage the connection's finished HTTP requests left for the
	// next ones (h2Kit); under mu.
	kits        []*h2Kit
	maxStreams  int           // the MAX_CONCURRENT_STREAMS we offer (server side)
	bodyTimeout time.Duration // the listener's body_read_timeout
	sendTimeout time.Duration // the listener's send_timeout (h2Stream.Write)
	connWindow  int64         // the connection's receive window (h2ConnWindow unless serving HTTP)
	// streamWindow is the receive window of each stream (h2StreamWindow
	// for clients, h2UpStreamWindow for upstreams).
	streamWindow int64
	panics       func() // counts recovered panics (tests check for none)
	// onGone is called once when the connection is gone or refuses new
	// streams (upstream side: drop it from its address's list).
	onGone func(*h2conn)

	kick chan struct{} // wakes the writer
	hr   h2hdrReader   // the reader goroutine's header-block decoder

	mu     sync.Mutex
	wb     h2wbuf
	spare  []byte
	enc    *hpack.Encoder
	encBuf bytes.Buffer
	// encResized: the peer set its table size; see writeFieldLocked.
	encResized bool
	started    bool          // the writer runs (start was called)
	prefaced   bool          // a client's, whose preface is read (or in the sniffer's prefix)
	readDone   chan struct{} // a client's: closed as serveConn, which runs its reader, returns (finish)
	prefaceBy  time.Time     // a client's read_header_timeout for its preface (zero: none)
	closed     bool          // no more frames: the writer closes the socket after the last batch
	shut       bool          // shutdown ran
	streams    map[uint32]*leg
	blocked    []*leg     // legs with DATA waiting for credit
	credits    []h2credit // owed to other connections, paid after unlock
	sendWin    int64      // connection-level credit the peer gave us
	recvAvail  int64      // connection-level credit we gave the peer
	recvOwed   int64      // forwarded bytes not yet credited back
	held       int64      // DATA queued in the streams' pend (see h2HoldLimit)
	peerWin    int64      // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame  int
	peerMax    int       // the peer's MAX_CONCURRENT_STREAMS
	zeroAt     time.Time // when the peer set it to 0 (takesNoStreams)
	// cond (on mu) is where handlers of served streams wait for credit
	// or buffer room (h2Stream.Write); waiters counts them.
	cond    *sync.Cond
	waiters int
	// closedRing remembers the last client streams that ended (server
	// side; closedHowLocked); closedNext is where the next goes.
	closedRing [h2ClosedRing]closedStream
	closedNext int
	goAway     bool   // GOAWAY sent or received: no new streams
	settings   bool   // the peer's first SETTINGS arrived
	lastID     uint32 // server: highest stream id the client opened
	nextID     uint32 // client: id of the next stream
	// resetDebt is the level of the client's rapid-reset bucket at
	// resetAt (server side; see h2ResetBurst).
	resetDebt float64
	resetAt   time.Time
	// idleSince is when the last stream ended: with no stream open for
	// idleTimeout (a listener's idle_timeout, upstreamIdleTimeout for an
	// upstream), idleTimer sends GOAWAY and closes.
	idleTimeout time.Duration
	idleSince   time.Time
	idleTimer   *time.Timer
	// Upstream keepalive (see startKeepalive): frames read so far, as
	// of the last tick, and whether that tick sent a PING.
	framesRead atomic.Uint64
	kaTimer    *time.Timer
	kaSeen     uint64
	kaPinged   bool
}

// leg is one stream of a relayed call on one connection: the client's
// stream (down) or the stream to the upstream. Its fields are guarded by
// its connection's mu.
type leg struct {
	c    *h2conn
	id   uint32
	r    *relayCall
	hs   *h2Stream // instead of r: a request of an HTTP client (h2serve.go)
	down bool
	// src is the leg whose received bytes this leg sends: credit for them
	// goes back to it once they leave.
	src *leg

	sendWin   int64
	recvAvail int64
	recvOwed  int64

	pend         []byte // DATA waiting for credit
	pendNoCredit int    // leading bytes of pend already credited (a retry's resend)
	pendEnd      bool   // END_STREAM follows pend
	trailers     []hpack.HeaderField
	inBlocked    bool

	sentEnd, recvEnd bool
	closed           bool // gone from the connection's stream map
	weReset          bool // it ended by our RST_STREAM (closedHowLocked)
}

// h2ReadBuf sizes a connection's read buffer. On plain TCP it is what one
// read system call can take: 32 KiB, two full frames. A TLS connection
// decrypts a whole record (up to 16 KiB) into a buffer of its own and
// hands it out from there, so reads past the first of a record cost a
// copy, not a system call, and 4 KiB do: an idle HTTP/2 client
// connection holds 28 KiB less (bench/lb/idlemem.sh H2=1).
func h2ReadBuf(nc net.Conn) int {
	if _, ok := nc.(*tls.Conn); ok {
		return 4 << 10
	}
	return 32 << 10
}

func newH2Conn(nc net.Conn, server bool, log *slog.Logger) *h2conn {
	c := &h2conn{
		nc:           nc,
		server:       server,
		log:          log,
		kick:         make(chan struct{}, 1),
		streams:      map[uint32]*leg{},
		sendWin:      65535,
		recvAvail:    h2ConnWindow,
		connWindow:   h2ConnWindow,
		streamWindow: h2StreamWindow,
		peerWin:      65535,
		peerFrame:    h2MaxFrame,
		peerMax:      100, // until the peer's SETTINGS say otherwise
		nextID:       1,
		maxStreams:   h2MaxStreams,
	}
	if server {
		c.readDone = make(chan struct{})
	} else {
		c.streamWindow = h2UpStreamWindow
	}
	c.cond = sync.NewCond(&c.mu)
	c.br = bufio.NewReaderSize(newConnReader(nc), h2ReadBuf(nc))
	c.out = newConnWriter(nc)
	c.fr = http2.NewFramer(&c.wb, c.br)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(h2MaxFrame)
	c.enc = hpack.NewEncoder(&c.encBuf)
	return c
}

// start writes our SETTINGS (after the client preface on the client
// side) and starts the writer.
func (c *h2conn) start(maxHeaderBytes uint32) {
	c.mu.Lock()
	if !c.server {
		c.wb.b = append(c.wb.b, h2Preface...)
	}
	s := []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: uint32(c.streamWindow)}}
	if c.server {
		s = append(s, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(c.maxStreams)})
	} else {
		s = append(s, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	}
	if maxHeaderBytes > 0 {
		s = append(s, http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderBytes})
	}
	c.hr.init(maxHeaderBytes)
	c.started = true
	_ = c.fr.WriteSettings(s...)
	_ = c.fr.WriteWindowUpdate(0, uint32(c.connWindow-65535))
	c.unlock()
	go c.writeLoop()
}

// unlock releases mu, wakes the writer when frames are waiting and pays
// the credit collected under the lock (which needs the other
// connections' locks, never held together with this one).
func (c *h2conn) unlock() {
	var cr []h2credit
	if len(c.credits) > 0 {
		cr = c.credits
		c.credits = nil
	}
	kick := len(c.wb.b) > 0 || c.closed
	c.mu.Unlock()
	if kick {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	for _, x := range cr {
		x.l.c.credit(x.l, x.n)
	}
}

func (c *h2conn) writeLoop() {
	defer c.recoverPanic()
	var deadline time.Time
	for range c.kick {
		if c.serve {
			// Woken by a handler's answer, the writer would run right
			// after that handler (a goroutine readied by a channel send
			// runs next) and write each answer alone. Yielding once lets
			// the other handlers that have their upstream's answer add
			// theirs first: one TLS record and one write for all.
			runtime.Gosched()
		}
		c.mu.Lock()
		buf := c.wb.b
		c.wb.b = c.spare[:0]
		c.spare = nil
		closed := c.closed
		c.mu.Unlock()
		if len(buf) > 0 {
			// Moving the deadline costs a timer update; a batch only needs
			// one that is not about to expire.
			if now := time.Now(); deadline.Sub(now) < h2WriteTimeout/2 {
				deadline = now.Add(h2WriteTimeout)
				_ = c.nc.SetWriteDeadline(deadline)
			}
			if _, err := c.out.Write(buf); err != nil {
				c.nc.Close()
				c.shutdown(err)
				return
			}
		}
		if closed {
			c.finish()
			return
		}
		c.mu.Lock()
		if cap(buf) <= h2KeepBuf {
			c.spare = buf[:0]
		}
		if len(buf) > 0 && (len(c.blocked) > 0 || c.waiters > 0) {
			c.releaseLocked() // DATA that waited for the buffer room this batch made
		}
		c.unlock()
	}
}

// h2Linger bounds how long a client connection that we close (a GOAWAY,
// an idle or drained one) is read on after our last frame.
const h2Linger = time.Second

// finish closes the connection once its last frames are out: a
// client's with a linger (lingerClose), an upstream's at once.
func (c *h2conn) finish() {
	if c.readDone == nil {
		c.nc.Close()
		return
	}
	lingerClose(c.nc, c.readDone)
}

// lingerClose closes a client's connection as x/net's server and
// net/http's do: our side is shut for writing, and what the client still
// sends is read (by its reader until readDone closes, then here; nil: no
// reader runs) until it closes or h2Linger passes. Closed at once with
// the client's bytes unread, the socket would send a reset, which may
// destroy what we wrote last (the GOAWAY that tells the client which of
// its requests were not served) before it is read.
func lingerClose(nc net.Conn, readDone <-chan struct{}) {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok {
		nc.Close()
		return
	}
	// A timer, not a read deadline, ends the linger: the reader may still
	// be in its handshake, which clears its deadline once the client's
	// SETTINGS are in. It starts first, and closes the socket under any
	// TLS: a close_notify may wait on a client that reads nothing.
	expired := make(chan struct{})
	t := time.AfterFunc(h2Linger, func() {
		if tc, ok := nc.(*tls.Conn); ok {
			tc.NetConn().Close()
		} else {
			nc.Close()
		}
		close(expired)
	})
	_ = cw.CloseWrite()
	if readDone != nil {
		select {
		case <-readDone:
		case <-expired:
		}
	}
	// No reader runs now (the client closed; a connection error, a failed
	// handshake; none ran): discard what still comes, until the client
	// closes or the timer closes the socket.
	_, _ = io.Copy(io.Discard, nc)
	t.Stop()
	nc.Close()
}

func (c *h2conn) recoverPanic() {
	if p := recover(); p != nil {
		if c.panics != nil {
			c.panics()
		}
		c.log.Error("http2 relay connection panicked; closing it", "panic", p, "stack", string(debug.Stack()))
		c.nc.Close()
		// On its own goroutine: the panic may have left a lock held, and
		// then only that goroutine, not this connection's, hangs.
		go c.shutdown(fmt.Errorf("panic: %v", p))
	}
}

// closeLocked ends the connection once the frames written so far are out.
func (c *h2conn) closeLocked() { c.closed = true }

// shutdown ends the connection and every stream on it.
func (c *h2conn) shutdown(err error) {
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return
	}
	c.shut, c.closed = true, true
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	legs := make([]*leg, 0, len(c.streams))
	for _, l := range c.streams {
		legs = append(legs, l)
		c.dropLocked(l)
	}
	c.streams, c.blocked = nil, nil
	c.unlock()
	for _, l := range legs {
		l.gone(false, err)
	}
	if c.onGone != nil {
		c.onGone(c)
	}
}

// dropLocked marks l closed and credits its sender for queued bytes that
// will never leave.
func (c *h2conn) dropLocked(l *leg) {
	if l.closed {
		return
	}
	l.closed = true
	c.wakeWritersLocked()
	c.held -= int64(len(l.pend))
	if fresh := len(l.pend) - l.pendNoCredit; fresh > 0 && l.src != nil {
		c.credits = append(c.credits, h2credit{l.src, fresh})
	}
	l.pend, l.trailers = nil, nil
}

// removeLocked takes a finished or reset stream off the connection.
func (c *h2conn) removeLocked(l *leg) {
	if l.closed {
		return
	}
	c.dropLocked(l)
	delete(c.streams, l.id)
	c.noteClosedLocked(l.id, l.weReset)
	if len(c.streams) == 0 {
		if c.goAway {
			c.closeLocked()
		} else if c.idleTimer != nil {
			c.idleSince = time.Now()
		}
	}
}

// resetLocked sends RST_STREAM and forgets the stream.
func (c *h2conn) resetLocked(l *leg, code http2.ErrCode) {
	if l.closed {
		return
	}
	if !c.closed {
		_ = c.fr.WriteRSTStream(l.id, code)
	}
	l.weReset = true
	c.removeLocked(l)
}

// closedStream is a client stream that ended lately (server side), and
// whether it ended by our RST_STREAM (see closedHowLocked).
type closedStream struct {
	id      uint32
	weReset bool
}

// h2ClosedRing is how many closed streams a connection remembers.
const h2ClosedRing = 64

// noteClosedLocked remembers how stream id ended (server side).
func (c *h2conn) noteClosedLocked(id uint32, weReset bool) {
	if !c.server {
		return
	}
	c.closedRing[c.closedNext%h2ClosedRing] = closedStream{id, weReset}
	c.closedNext++
}

// closedHowLocked tells a closed stream's frames apart (RFC 9113
// section 5.1): after our RST_STREAM, what the client had in flight must
// be ignored; after its own RST_STREAM or the stream's end, anything but
// PRIORITY is an error. known is false for a stream that ended before
// the last h2ClosedRing, or was never opened (a lower id than one used).
func (c *h2conn) closedHowLocked(id uint32) (known, weReset bool) {
	for _, cs := range c.closedRing {
		if cs.id == id && id != 0 {
			return true, cs.weReset
		}
	}
	return false, false
}

// sentEndLocked records our END_STREAM. A server that answered before the
// client finished asks it to stop sending (RFC 9113 section 8.1), as
// grpc-go's server does.
func (c *h2conn) sentEndLocked(l *leg) {
	l.sentEnd = true
	if c.server && c.resetDebt > 0 {
		c.resetDebt-- // an answered call (see h2ResetBurst)
	}
	switch {
	case l.recvEnd:
		c.removeLocked(l)
	case c.server:
		c.resetLocked(l, http2.ErrCodeNo)
	}
}

func (c *h2conn) recvEndLocked(l *leg) {
	l.recvEnd = true
	if l.sentEnd {
		c.removeLocked(l)
	}
}

// credit gives n bytes received on l (of this connection; l may be nil
// or gone) back to the peer, in WINDOW_UPDATEs batched to a quarter of
// the window. An upstream connection's own window was given back on
// receipt (onData): only l's is.
func (c *h2conn) credit(l *leg, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	if !c.closed {
		if c.server {
			c.creditConnLocked(n)
		}
		if l != nil && !l.closed && !l.recvEnd {
			l.recvOwed += int64(n)
			if l.recvOwed >= c.streamWindow/4 {
				_ = c.fr.WriteWindowUpdate(l.id, uint32(l.recvOwed))
				l.recvAvail += l.recvOwed
				l.recvOwed = 0
			}
		}
	}
	c.unlock()
}

// creditConnLocked gives n bytes back to the connection's window.
func (c *h2conn) creditConnLocked(n int) {
	if c.closed {
		return
	}
	c.recvOwed += int64(n)
	if c.recvOwed >= c.connWindow/4 {
		_ = c.fr.WriteWindowUpdate(0, uint32(c.recvOwed))
		c.recvAvail += c.recvOwed
		c.recvOwed = 0
	}
}

func (c *h2conn) writeDataLocked(id uint32, end bool, p []byte) {
	for {
		n := min(len(p), c.peerFrame)
		last := n == len(p)
		_ = c.fr.WriteData(id, end && last, p[:n])
		p = p[n:]
		if last {
			return
		}
	}
}

// writeHeaderBlockLocked sends what was encoded into encBuf as HEADERS
// and CONTINUATION frames.
func (c *h2conn) writeHeaderBlockLocked(id uint32, end bool) {
	b := c.encBuf.Bytes()
	first := b[:min(len(b), c.peerFrame)]
	b = b[len(first):]
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(b) == 0})
	for len(b) > 0 {
		frag := b[:min(len(b), c.peerFrame)]
		b = b[len(frag):]
		_ = c.fr.WriteContinuation(id, len(b) == 0, frag)
	}
	c.encBuf.Reset()
}

func (c *h2conn) field(name, value string, sensitive bool) {
	c.writeFieldLocked(hpack.HeaderField{Name: name, Value: value, Sensitive: sensitive})
}

// encodePassLocked encodes the fields a peer sent, minus hop-by-hop
// headers and the names in skip.
func (c *h2conn) encodePassLocked(fields []hpack.HeaderField, pseudo bool, skip string) {
	for _, hf := range fields {
		if hopByHop(hf.Name) || hf.Name == skip || (!pseudo && hf.IsPseudo()) {
			continue
		}
		c.writeFieldLocked(hf)
	}
}

// sendLocked hands p, then END_STREAM if end, to the peer on l: what the
// windows allow now, the rest queued. The first noCredit bytes were
// credited before. It returns the bytes to credit to l's sender now.
func (c *h2conn) sendLocked(l *leg, p []byte, noCredit int, end bool) int {
	if l.closed || l.sentEnd || c.closed {
		return len(p) - noCredit
	}
	freed := 0
	if len(l.pend) == 0 && !l.pendEnd {
		n := int(max(0, min(int64(len(p)), l.sendWin, c.sendWin, c.bufRoom())))
		if n == len(p) {
			if n > 0 || end {
				c.writeDataLocked(l.id, end, p)
			}
			l.sendWin -= int64(n)
			c.sendWin -= int64(n)
			if end {
				c.sentEndLocked(l)
			}
			return n - noCredit
		}
		if n > 0 {
			c.writeDataLocked(l.id, false, p[:n])
			l.sendWin -= int64(n)
			c.sendWin -= int64(n)
			k := min(n, noCredit)
			freed, noCredit, p = n-k, noCredit-k, p[n:]
		}
	}
	l.pend = append(l.pend, p...)
	c.held += int64(len(p))
	l.pendNoCredit += noCredit
	l.pendEnd = l.pendEnd || end
	if !l.inBlocked {
		l.inBlocked = true
		c.blocked = append(c.blocked, l)
	}
	return freed
}

// trailersLocked ends l with a trailer block, after its queued DATA.
func (c *h2conn) trailersLocked(l *leg, fields []hpack.HeaderField) {
	if l.closed || l.sentEnd || c.closed {
		return
	}
	if len(l.pend) == 0 && !l.pendEnd {
		c.encodePassLocked(fields, false, "")
		c.writeHeaderBlockLocked(l.id, true)
		c.sentEndLocked(l)
		return
	}
	// fields may be the reader's, reused for its next block.
	l.trailers, l.pendEnd = slices.Clone(fields), true
	if !l.inBlocked {
		l.inBlocked = true
		c.blocked = append(c.blocked, l)
	}
}

// bufRoom is how much more DATA the write buffer takes now.
func (c *h2conn) bufRoom() int64 { return int64(h2WriteBufLimit - len(c.wb.b)) }

// floodedLocked reports whether the frames written in answer to the
// peer's own (PING and SETTINGS acknowledgements, RST_STREAM for frames
// on closed or refused streams) have piled up past twice the write
// buffer's limit: a peer that sends them without reading its answers
// would otherwise grow the buffer while the writer waits out
// h2WriteTimeout. The connection then ends with ENHANCE_YOUR_CALM.
func (c *h2conn) floodedLocked() bool { return len(c.wb.b) > 2*h2WriteBufLimit }

// releaseLocked sends queued DATA as far as new credit allows.
func (c *h2conn) releaseLocked() {
	c.wakeWritersLocked()
	if len(c.blocked) == 0 || c.closed {
		return
	}
	keep := c.blocked[:0]
	for _, l := range c.blocked {
		if l.closed {
			l.inBlocked = false
			continue
		}
		if len(l.pend) > 0 {
			n := int(max(0, min(int64(len(l.pend)), l.sendWin, c.sendWin, c.bufRoom())))
			if n == 0 {
				keep = append(keep, l)
				continue
			}
			all := n == len(l.pend)
			endNow := all && l.pendEnd && l.trailers == nil
			c.writeDataLocked(l.id, endNow, l.pend[:n])
			c.held -= int64(n)
			l.sendWin -= int64(n)
			c.sendWin -= int64(n)
			k := min(n, l.pendNoCredit)
			l.pendNoCredit -= k
			if fresh := n - k; fresh > 0 && l.src != nil {
				c.credits = append(c.credits, h2credit{l.src, fresh})
			}
			if !all {
				l.pend = l.pend[n:]
				keep = append(keep, l)
				continue
			}
			l.pend = nil
			l.inBlocked = false
			if endNow {
				c.sentEndLocked(l)
				continue
			}
		}
		l.inBlocked = false
		switch {
		case l.trailers != nil:
			c.encodePassLocked(l.trailers, false, "")
			c.writeHeaderBlockLocked(l.id, true)
			l.trailers = nil
			c.sentEndLocked(l)
		case l.pendEnd:
			_ = c.fr.WriteData(l.id, true, nil)
			c.sentEndLocked(l)
		}
	}
	clear(c.blocked[len(keep):])
	c.blocked = keep
}

// idleLocked reports whether stream id was never opened (RFC 9113
// section 5.1): frames other than HEADERS for it are a protocol error.
func (c *h2conn) idleLocked(id uint32) bool {
	if c.server {
		return id%2 == 0 || id > c.lastID
	}
	return id%2 == 0 || id >= c.nextID
}

// closedStreamErrLocked is the answer to a frame for a stream that is not
// open: a protocol error if it was never opened, otherwise (closed or
// reset by us) nothing, the frame is ignored.
func (c *h2conn) closedStreamErrLocked(id uint32) error {
	if c.idleLocked(id) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

// readLoop reads and dispatches frames until the connection ends.
func (c *h2conn) readLoop() {
	defer c.recoverPanic()
	var err error
	for {
		var f http2.Frame
		// The frame's type, for its errors: a cheap look at bytes that
		// ReadFrame reads next anyway.
		var typ http2.FrameType
		if h, perr := c.br.Peek(9); perr == nil {
			typ = http2.FrameType(h[3])
		}
		f, err = c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if typ == http2.FrameHeaders {
					// Padding past the payload, the one HEADERS error
					// x/net makes a stream error: its header block goes
					// undecoded, which would leave the peer's HPACK table
					// and ours apart. RFC 9113 section 6.2 makes it a
					// connection error.
					err = http2.ConnectionError(http2.ErrCodeProtocol)
				} else if err = c.onStreamError(se); err == nil {
					continue
				}
			}
			break
		}
		c.framesRead.Add(1)
		if err = c.dispatch(f); err != nil {
			break
		}
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		c.mu.Lock()
		if !c.closed {
			_ = c.fr.WriteGoAway(c.lastID, http2.ErrCode(ce), nil)
		}
		c.closeLocked()
		flooded := c.floodedLocked()
		c.unlock()
		if flooded {
			// The peer does not read: its GOAWAY would wait behind the
			// rest while the writer waits out h2WriteTimeout, holding
			// the buffer. The socket goes now (and the writer with it).
			c.nc.Close()
		}
	} else if errors.Is(err, http2.ErrFrameTooLarge) {
		c.mu.Lock()
		if !c.closed {
			_ = c.fr.WriteGoAway(c.lastID, http2.ErrCodeFrameSize, nil)
		}
		c.closeLocked()
		c.unlock()
	}
	c.shutdown(err)
}

func (c *h2conn) dispatch(f http2.Frame) error {
	if !c.settings {
		if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
			return http2.ConnectionError(http2.ErrCodeProtocol) // RFC 9113 section 3.4
		}
		c.settings = true
	}
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.HeadersFrame:
		h, err := c.hr.read(c.fr, f)
		if err == nil && f.HasPriority() && f.Priority.StreamDep == f.StreamID {
			// Decoded all the same: the HPACK state must stay in step.
			err = http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol} // section 5.3.1
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				return c.onStreamError(se)
			}
			return err
		}
		if c.server {
			return c.onRequestHeaders(h)
		}
		return c.onResponseHeaders(h)
	case *http2.RSTStreamFrame:
		return c.onRST(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.mu.Lock()
			if c.floodedLocked() {
				c.mu.Unlock()
				return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
			}
			if !c.closed {
				_ = c.fr.WritePing(true, f.Data)
			}
			c.unlock()
		}
	case *http2.GoAwayFrame:
		return c.onGoAway(f)
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return c.onStreamError(http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}) // section 5.3.1
		}
	case *http2.PushPromiseFrame:
		// Clients may not push; we told upstreams not to.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // PRIORITY and unknown frame types are ignored
}

// onStreamError resets a stream the framer found malformed.
func (c *h2conn) onStreamError(se http2.StreamError) error {
	c.mu.Lock()
	l := c.streams[se.StreamID]
	if l == nil && c.server && se.StreamID%2 == 1 && se.StreamID > c.lastID {
		c.lastID = se.StreamID // a new stream with malformed headers
	}
	if c.server && !c.resetAllowedLocked() || c.floodedLocked() {
		// Malformed streams are refused streams too, for the rapid-reset
		// bound.
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	if !c.closed {
		_ = c.fr.WriteRSTStream(se.StreamID, se.Code)
	}
	if l != nil {
		l.weReset = true
		c.removeLocked(l)
	} else {
		c.noteClosedLocked(se.StreamID, true)
	}
	c.unlock()
	if l != nil {
		l.reset(se.Code)
	}
	return nil
}

func (c *h2conn) onData(f *http2.DataFrame) error {
	id, n := f.StreamID, int(f.Length)
	data := f.Data()
	end := f.StreamEnded()
	c.mu.Lock()
	if int64(n) > c.recvAvail {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvAvail -= int64(n)
	if !c.server {
		// An upstream connection's window comes back at once (see the
		// top of the file): the stream's window bounds what waits.
		c.creditConnLocked(n)
	}
	l := c.streams[id]
	if l == nil {
		idle := c.idleLocked(id)
		if known, weReset := c.closedHowLocked(id); known && !weReset && !c.closed {
			// Closed by its end or the client's RST_STREAM: a stream
			// error. After ours, the client's DATA in flight is ignored.
			if c.floodedLocked() {
				c.mu.Unlock()
				return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
			}
			_ = c.fr.WriteRSTStream(id, http2.ErrCodeStreamClosed)
		}
		c.unlock()
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.credit(nil, n) // a stream already closed: ignored, but it used the window
		return nil
	}
	var code http2.ErrCode
	switch {
	case l.recvEnd:
		code = http2.ErrCodeStreamClosed
	case int64(n) > l.recvAvail:
		code = http2.ErrCodeFlowControl
	}
	if code != 0 {
		c.resetLocked(l, code)
		c.unlock()
		c.credit(nil, n)
		l.reset(code)
		return nil
	}
	l.recvAvail -= int64(n)
	if end {
		c.recvEndLocked(l)
	}
	c.unlock()
	if pad := n - len(data); pad > 0 {
		c.credit(l, pad)
	}
	switch {
	case l.hs != nil:
		l.hs.onClientData(data, end)
	case l.down:
		l.r.onClientData(l, data, end)
	default:
		l.r.onUpData(l, data, end)
	}
	return nil
}

func (c *h2conn) onRST(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	l := c.streams[f.StreamID]
	if l == nil {
		err := c.closedStreamErrLocked(f.StreamID)
		c.mu.Unlock()
		return err
	}
	if c.server && !c.resetAllowedLocked() {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	c.removeLocked(l)
	c.unlock()
	l.reset(f.ErrCode)
	return nil
}

func (c *h2conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.mu.Lock()
	if c.floodedLocked() {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSizeLimit(s.Val)
			c.encResized = true
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWin
			c.peerWin = int64(s.Val)
			for _, l := range c.streams {
				if l.sendWin += delta; l.sendWin > h2MaxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		case http2.SettingMaxConcurrentStreams:
			c.peerMax = int(min(s.Val, 1<<20))
			if s.Val == 0 {
				c.zeroAt = time.Now()
			}
		}
		return nil
	})
	if err == nil && !c.closed {
		_ = c.fr.WriteSettingsAck()
		c.releaseLocked()
	}
	c.unlock()
	return err
}

func (c *h2conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	c.mu.Lock()
	var reset *leg
	if f.StreamID == 0 {
		if c.sendWin += inc; c.sendWin > h2MaxWindow {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	} else if l := c.streams[f.StreamID]; l != nil {
		if l.sendWin += inc; l.sendWin > h2MaxWindow {
			c.resetLocked(l, http2.ErrCodeFlowControl)
			reset = l
		}
	} else if c.idleLocked(f.StreamID) {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.releaseLocked()
	c.unlock()
	if reset != nil {
		reset.reset(http2.ErrCodeFlowControl)
	}
	return nil
}

func (c *h2conn) onGoAway(f *http2.GoAwayFrame) error {
	c.mu.Lock()
	c.goAway = true
	var refused []*leg
	if !c.server {
		// Streams above the last one the upstream will process never
		// reached it: they may go to another upstream.
		for id, l := range c.streams {
			if id > f.LastStreamID {
				refused = append(refused, l)
			}
		}
		for _, l := range refused {
			c.removeLocked(l)
		}
	}
	if len(c.streams) == 0 {
		c.closeLocked()
	}
	c.unlock()
	if c.onGone != nil {
		c.onGone(c)
	}
	for _, l := range refused {
		l.gone(true, errUpstreamGoAway)
	}
	return nil
}

// reset tells l's call that the peer (or the relay, for a malformed
// frame) reset the stream.
func (l *leg) reset(code http2.ErrCode) {
	if l.hs != nil {
		l.hs.onClientGone()
	} else if l.down {
		l.r.onClientGone()
	} else {
		l.r.onUpReset(l, code)
	}
}

// gone tells l's call that its connection ended; refused means the
// upstream never saw the stream.
func (l *leg) gone(refused bool, err error) {
	if l.hs != nil {
		l.hs.onClientGone()
	} else if l.down {
		l.r.onClientGone()
	} else {
		l.r.onUpGone(l, refused, err)
	}
}

// resetAllowedLocked counts a stream the client cancelled or had refused
// and reports whether the client is still within h2ResetBurst.
func (c *h2conn) resetAllowedLocked() bool {
	now := time.Now()
	if !c.resetAt.IsZero() {
		c.resetDebt = max(0, c.resetDebt-now.Sub(c.resetAt).Seconds()*h2ResetRate)
	}
	c.resetAt = now
	c.resetDebt++
	return c.resetDebt <= h2ResetBurst
}

// hopByHop reports connection-specific headers, which HTTP/2 forbids and
// a proxy never passes on.
func hopByHop(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}
