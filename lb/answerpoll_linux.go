//go:build linux

package lb

import (
	"net"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// answerPoller wakes the goroutines waiting for upstream answers in the
// order the answers arrived, and looks for them more often than Go's
// poller does under load.
//
// Why: Go's poller runs only when the run queues are empty. Under load
// that is once per round in which every connection's goroutine runs
// (read the answer, write it, read the next request, write it upstream),
// and it makes runnable what it found in the reverse of epoll's order. An
// answer that arrived early in a round thus runs last in the next one,
// and one that arrived just after a poll waits a whole round: the
// proxy-bound p99 was 1.3-1.65x HAProxy's, whose event loop polls twice
// per such round and handles events in arrival order (bench/lb/RESULTS.md,
// "Runs 29–30"). Here the upstream connections are also in an epoll set of
// our own. One goroutine harvests it in arrival order each time Go's
// poller runs (parked on the set's descriptor, which Go's poller watches),
// wakes the waiters oldest first, and, when the proxy is loaded, harvests
// once more after they and the rest of the queue ran (see run).
//
// A waiter's connection stays in Go's poller too: every read still goes
// through net.Conn, and a read that finds nothing (a wake-up for an
// earlier answer's late bytes, an abort) waits there as before.
//
// The poller is used only while the proxy is saturated (loaded). Where
// the proxy has idle moments it costs more than it gives: each answer
// goes through the harvester's goroutine and its epoll_wait calls, 16 %
// more CPU per request with a Go upstream in bench/lb and 38 % at one
// connection, for no gain in latency (bench/lb/RESULTS.md, "Run 31").
// Saturation shows in Go's scheduling latency: waiters sample it
// (sampleLoad), and while it is low they wait in Go's poller and the
// harvester sleeps.
type answerPoller struct {
	epfd int
	kick int // an eventfd in the set; see park
	raw  syscall.RawConn

	mu     sync.Mutex
	waits  map[uint64]*answerWait
	nextID uint64

	// loaded says that waiters use the poller (see enter); armed counts
	// those that do. The harvester sleeps on wakeup while neither.
	loaded atomic.Bool
	armed  atomic.Int32
	wakeup chan struct{}
	// pinned keeps loaded as it was set (VIGIL_LB_ANSWER_POLLER=on, tests).
	pinned bool
	// sampleLoad's, under sampleMu.
	sampleMu   sync.Mutex
	sampleNext atomic.Int64 // monotonic ns of the next sample
	sample     []rtmetrics.Sample
	lastCounts []uint64
	harvests   atomic.Int64 // for tests: harvests made
	switches   atomic.Int64 // changes of loaded, for the metrics

	// The harvesting goroutine's own.
	evs     [128]unix.EpollEvent
	ready   []*answerWait
	kickDue bool
	parkFn  func(uintptr) bool
}

// pollsPerRound: harvests between two runs of Go's poller. The second,
// after the woken goroutines and the rest of the queue ran, picks up the
// answers that arrived meanwhile, as an event loop polling after each
// pass would. A third measured no better in single-proxy runs
// (bench/lb/bound.sh, not recorded in RESULTS.md).
const pollsPerRound = 2

// The answer poller is the process's; nil where it could not be made or
// VIGIL_LB_ANSWER_POLLER=off turns it off. VIGIL_LB_ANSWER_POLLER=on
// uses it whatever the load; by default it is used while the proxy is
// saturated (see answerPoller).
var answerPollerOf = sync.OnceValue(func() *answerPoller {
	mode := os.Getenv("VIGIL_LB_ANSWER_POLLER")
	if mode == "off" {
		return nil
	}
	p, err := newAnswerPoller()
	if err != nil {
		return nil
	}
	if mode == "on" {
		p.pin(true)
	}
	go p.run()
	return p
})

func newAnswerPoller() (*answerPoller, error) {
	set, err := newEpollSet("lb-answer-poller")
	if err != nil {
		return nil, err
	}
	// The kick (an eventfd, id 0; see park).
	kick, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		ev := epollEvent(unix.EPOLLIN|unix.EPOLLET, 0)
		if err = unix.EpollCtl(set.fd, unix.EPOLL_CTL_ADD, kick, &ev); err != nil {
			unix.Close(kick)
		}
	}
	if err != nil {
		set.f.Close()
		return nil, err
	}
	p := &answerPoller{epfd: set.fd, kick: kick, raw: set.raw, waits: map[uint64]*answerWait{}, nextID: 1,
		wakeup: make(chan struct{}, 1), sample: []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}}}
	p.parkFn = p.parkStep
	return p, nil
}

// watch adds nc to the set; nil when nc has no descriptor or cannot be
// added (its exchanges then wait in Go's poller alone).
func (p *answerPoller) watch(nc net.Conn) *answerWait {
	raw := rawConnOf(nc)
	if p == nil || raw == nil {
		return nil
	}
	p.mu.Lock()
	w := &answerWait{p: p, id: p.nextID, ch: make(chan struct{}, 1)}
	p.nextID++
	p.waits[w.id] = w
	p.mu.Unlock()
	ev := epollEvent(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLET, w.id)
	var err error
	if cerr := raw.Control(func(fd uintptr) { err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); cerr != nil || err != nil {
		w.forgetConn()
		return nil
	}
	return w
}

// run harvests the set for ever. After a batch of busyBatch or more
// answers (a loaded proxy) it lets the woken goroutines and the rest of
// the queue run, harvests again (up to pollsPerRound times), and then
// parks until Go's poller has run, so that the goroutines waiting there
// (client reads, accepts) are not kept waiting by a harvester that is
// always runnable. After a smaller batch it parks at once: it never
// yielded, so Go's poller is not held off, and a quiet park costs one
// harvest where a kicked one costs three system calls and a wake-up.
func (p *answerPoller) run() {
	yielded := false
	for {
		if !p.loaded.Load() && p.armed.Load() == 0 {
			// No waiter can arm now without setting loaded first, which
			// wakes us (see enter).
			<-p.wakeup
			continue
		}
		if f := beforeKickedPark.Load(); yielded && f != nil {
			(*f)()
		}
		p.park(yielded)
		yielded = false
		n := p.wakeReady()
		for i := 1; n >= busyBatch && i < pollsPerRound; i++ {
			runtime.Gosched()
			yielded = true
			if p.harvest() == 0 {
				break
			}
			p.wakeReady()
		}
	}
}

// beforeKickedPark, when a test sets it, runs before each park that
// follows a yield.
var beforeKickedPark atomic.Pointer[func()]

// busyBatch: answers in one harvest that mark the proxy as loaded (a
// saturated one finds 25-50 per harvest; one with idle moments, 1-3).
const busyBatch = 4

// wakeReady wakes p.ready's waiters and returns how many. A channel send
// makes its receiver run next, ahead of the queue, and pushes the one
// before to the queue's end: waking the oldest last has them run oldest
// first.
func (p *answerPoller) wakeReady() int {
	if len(p.ready) == 0 { // a park ended to sleep, or by an error of the set's descriptor
		return 0
	}
	for _, w := range p.ready[1:] {
		w.wake()
	}
	p.ready[0].wake()
	return len(p.ready)
}

// park returns once p.ready holds waiters. A quiet park harvests first
// and waits in Go's poller only when there is nothing. After a yield the
// park is kicked: it waits until Go's poller has run, whatever the set
// holds. Go's poller runs when the run queues are empty; the kick,
// written once the wait is set up (see parkStep), makes the set readable
// so that this run wakes the harvester even when every answer came
// before: their readiness may already have been reported to Go's poller,
// and a wait forgets what was reported before it.
func (p *answerPoller) park(kicked bool) {
	p.kickDue = kicked
	p.raw.Read(p.parkFn)
}

func (p *answerPoller) parkStep(uintptr) bool {
	if p.kickDue {
		p.kickDue = false
		unix.Write(p.kick, kickBytes[:])
		return false // wait for Go's poller
	}
	if p.harvest() > 0 {
		return true
	}
	// Unloaded, with no waiter left: end the park, and sleep (run).
	// Parked on, the harvester would be woken for every answer that
	// arrives: epoll_wait drops an edge-triggered event whose connection
	// was read meanwhile, so its harvest finds nothing, and the park
	// would go on.
	return !p.loaded.Load() && p.armed.Load() == 0
}

var kickBytes = [8]byte{1}

// harvest takes the set's events without waiting and gathers their
// waiters in p.ready, in the order the events came.
func (p *answerPoller) harvest() int {
	p.harvests.Add(1)
	p.ready = p.ready[:0]
	n, err := unix.EpollWait(p.epfd, p.evs[:], 0)
	if err != nil || n <= 0 {
		return 0
	}
	p.mu.Lock()
	for _, ev := range p.evs[:n] {
		if w := p.waits[epollID(ev)]; w != nil {
			p.ready = append(p.ready, w)
		}
	}
	p.mu.Unlock()
	return len(p.ready)
}

// setLoaded says whether waiters use the poller from now on; turned on,
// it wakes the harvester.
func (p *answerPoller) setLoaded(on bool) {
	if p.loaded.Swap(on) == on {
		return
	}
	p.switches.Add(1)
	if !on {
		return
	}
	select {
	case p.wakeup <- struct{}{}:
	default:
	}
}

// answerPollerState reports, for the metrics, whether the process has an
// answer poller, whether waits use it now, and how often that changed.
func answerPollerState() (present, loaded bool, switches int64) {
	p := answerPollerOf()
	if p == nil {
		return false, false, 0
	}
	return true, p.loaded.Load(), p.switches.Load()
}

// pin sets loaded for good: sampleLoad leaves it.
func (p *answerPoller) pin(on bool) {
	p.sampleMu.Lock()
	p.pinned = true
	p.sampleMu.Unlock()
	p.setLoaded(on)
}

// Saturation, in Go's scheduling latency (the time goroutines wait
// runnable before they run): its median over sampleEvery. In bench/lb's
// proxy-bound scenario it was 330-390 µs, with a Go upstream (the proxy
// 80-86 % busy) 10-100 µs, at one connection 0. Between the two bounds
// the state stays as it is.
const (
	sampleEvery     = 100 * time.Millisecond
	loadedLatency   = 200 * time.Microsecond
	unloadedLatency = 100 * time.Microsecond
)

// sampleLoad sets loaded from the scheduling latency since its last
// sample, at most once per sampleEvery. Waiters call it (every
// sampleExchanges exchanges of an upstream connection), so an idle proxy samples
// nothing and wakes for nothing.
func (p *answerPoller) sampleLoad() {
	now := nanotime()
	if now < p.sampleNext.Load() || !p.sampleMu.TryLock() {
		return
	}
	defer p.sampleMu.Unlock()
	if p.pinned || now < p.sampleNext.Load() {
		return
	}
	p.sampleNext.Store(now + int64(sampleEvery))
	rtmetrics.Read(p.sample)
	if p.sample[0].Value.Kind() != rtmetrics.KindFloat64Histogram {
		return
	}
	h := p.sample[0].Value.Float64Histogram()
	if len(p.lastCounts) == len(h.Counts) {
		if med, ok := medianSince(h, p.lastCounts); ok {
			switch {
			case med >= loadedLatency.Seconds():
				p.setLoaded(true)
			case med < unloadedLatency.Seconds():
				p.setLoaded(false)
			}
		}
	}
	p.lastCounts = append(p.lastCounts[:0], h.Counts...)
}

// medianSince returns the upper bound of the bucket holding the median of
// what h counted since last (h's earlier counts); ok is false when it
// counted nothing.
func medianSince(h *rtmetrics.Float64Histogram, last []uint64) (float64, bool) {
	var total uint64
	for i, c := range h.Counts {
		total += c - last[i]
	}
	if total == 0 {
		return 0, false
	}
	var cum uint64
	for i, c := range h.Counts {
		if cum += c - last[i]; 2*cum >= total {
			return h.Buckets[i+1], true
		}
	}
	return h.Buckets[len(h.Buckets)-1], true
}

// sampleExchanges: an upstream connection's exchanges between two calls
// of answerWait.sampleLoad.
const sampleExchanges = 64

// nanotime is a monotonic clock in ns.
func nanotime() int64 { return int64(time.Since(processStart)) }

var processStart = time.Now()

// answerWait is one upstream connection's place in the answer poller.
type answerWait struct {
	p     *answerPoller
	id    uint64
	state atomic.Uint32
	ch    chan struct{}
}

const (
	answerIdle    = iota // nothing seen since forget
	answerReady          // readable (or woken) since forget
	answerWaiting        // a goroutine waits on ch
)

// forget drops what the poller saw before: called before a request
// leaves, so that whatever comes after is for its answer.
func (w *answerWait) forget() { w.state.Store(answerIdle) }

// enter reports whether the next exchange waits in the poller; if so,
// the caller calls leave after its wait. Counting itself in before it
// looks at loaded, a waiter cannot slip past a harvester going to sleep:
// that one looks at loaded first and then at armed (see run).
func (w *answerWait) enter() bool {
	p := w.p
	if !p.loaded.Load() {
		// Most calls, unloaded: they leave armed alone, so that the
		// harvester is not kept from its sleep by waits that back out.
		return false
	}
	p.armed.Add(1)
	if p.loaded.Load() {
		return true
	}
	p.armed.Add(-1)
	return false
}

// sampleLoad samples the proxy's load (answerPoller.sampleLoad).
func (w *answerWait) sampleLoad() { w.p.sampleLoad() }

// leave ends what enter began.
func (w *answerWait) leave() { w.p.armed.Add(-1) }

// wait returns once the connection was readable, or woken, since forget.
func (w *answerWait) wait() {
	if w.state.CompareAndSwap(answerIdle, answerWaiting) {
		<-w.ch
	}
}

// wake marks the connection ready and wakes its waiter if one waits: the
// poller's, and an abort's (whose read then reports it).
func (w *answerWait) wake() {
	if w.state.Swap(answerReady) == answerWaiting {
		w.ch <- struct{}{}
	}
}

// forgetConn removes the connection from the poller; call it as the
// connection closes. Its descriptor leaves the set when closed; events
// still on their way find no waiter.
func (w *answerWait) forgetConn() {
	if w == nil {
		return
	}
	w.p.mu.Lock()
	delete(w.p.waits, w.id)
	w.p.mu.Unlock()
}
