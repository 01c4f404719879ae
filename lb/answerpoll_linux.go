//go:build linux

package lb

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

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
type answerPoller struct {
	epfd int
	kick int // an eventfd in the set; see park
	raw  syscall.RawConn

	mu     sync.Mutex
	waits  map[uint64]*answerWait
	nextID uint64

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
// VIGIL_LB_ANSWER_POLLER=off turns it off. It pays under load (the
// proxy-bound p99 in bench/lb) and costs when the proxy has idle moments:
// each answer then goes through the harvester's goroutine and two
// epoll_wait calls, 10-15 % more CPU per request in run.sh's Go-upstream
// scenario. Turn it off where the proxy's core is never the bottleneck
// and CPU counts.
var answerPollerOf = sync.OnceValue(func() *answerPoller {
	if os.Getenv("VIGIL_LB_ANSWER_POLLER") == "off" {
		return nil
	}
	p, err := newAnswerPoller()
	if err != nil {
		return nil
	}
	go p.run()
	return p
})

func newAnswerPoller() (*answerPoller, error) {
	epfd, kick, err := newAnswerSet()
	if err != nil {
		return nil, err
	}
	// A non-blocking descriptor given to os.NewFile is watched by Go's
	// poller: the set's descriptor is readable while it holds events.
	f := os.NewFile(uintptr(epfd), "lb-answer-poller")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(kick)
		return nil, err
	}
	p := &answerPoller{epfd: epfd, kick: kick, raw: raw, waits: map[uint64]*answerWait{}, nextID: 1}
	p.parkFn = p.parkStep
	return p, nil
}

// newAnswerSet makes the poller's epoll set, non-blocking, with the kick
// (an eventfd, id 0) in it.
func newAnswerSet() (epfd, kick int, err error) {
	if epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return -1, -1, err
	}
	if kick, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(epfd)
		return -1, -1, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET}
	if err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, kick, &ev); err == nil {
		err = unix.SetNonblock(epfd, true)
	}
	if err != nil {
		unix.Close(kick)
		unix.Close(epfd)
		return -1, -1, err
	}
	return epfd, kick, nil
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(w.id), Pad: int32(w.id >> 32)}
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
	if len(p.ready) == 0 { // park ended by an error of the set's descriptor; never seen
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
	return p.harvest() > 0
}

var kickBytes = [8]byte{1}

// harvest takes the set's events without waiting and gathers their
// waiters in p.ready, in the order the events came.
func (p *answerPoller) harvest() int {
	p.ready = p.ready[:0]
	n, err := unix.EpollWait(p.epfd, p.evs[:], 0)
	if err != nil || n <= 0 {
		return 0
	}
	p.mu.Lock()
	for _, ev := range p.evs[:n] {
		id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		if w := p.waits[id]; w != nil {
			p.ready = append(p.ready, w)
		}
	}
	p.mu.Unlock()
	return len(p.ready)
}

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
