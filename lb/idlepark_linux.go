//go:build linux

package lb

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// idleParker holds keep-alive client connections that have been idle for
// a while (idleParkAfter) without a goroutine each: their goroutine ends,
// the connection waits in an epoll set of the parker's own, and a new
// goroutine takes it up when its next request arrives (or a timer closes
// it at idle_timeout). A goroutine parked on a read keeps its stack, 8 KiB
// after a request through the proxy: most of the 14.5 KB an idle
// connection held (bench/lb/RESULTS.md, "Memory per idle connection").
type idleParker struct {
	epfd int
	raw  syscall.RawConn

	mu     sync.Mutex
	conns  map[uint64]*h1ServerConn
	nextID uint64

	evs [128]unix.EpollEvent // run's
}

// idleParkerOf returns the process's parker; nil where it could not be
// made.
func idleParkerOf() *idleParker {
	theIdleParker.once.Do(func() { theIdleParker.p = newIdleParker() })
	return theIdleParker.p
}

var theIdleParker struct {
	once sync.Once
	p    *idleParker
}

func newIdleParker() *idleParker {
	set, err := newEpollSet("lb-idle-parker")
	if err != nil {
		return nil
	}
	p := &idleParker{epfd: set.fd, raw: set.raw, conns: map[uint64]*h1ServerConn{}, nextID: 1}
	go p.run()
	return p
}

// accepts reports whether c can wait here: it reads through its RawConn
// (not a TLS connection).
func (p *idleParker) accepts(c *h1ServerConn) bool { return p != nil && c.nw.raw != nil }

// add waits for c's next request in the set: c's descriptor is in it
// for one event (EPOLLONESHOT). It reports false when c cannot wait here.
func (p *idleParker) add(c *h1ServerConn) bool {
	raw := c.nw.raw
	if p == nil || raw == nil {
		return false
	}
	p.mu.Lock()
	if c.parkID == 0 {
		c.parkID = p.nextID
		p.nextID++
	}
	p.conns[c.parkID] = c
	p.mu.Unlock()
	op := unix.EPOLL_CTL_MOD
	if !c.parkAdded {
		op = unix.EPOLL_CTL_ADD
	}
	ev := epollEvent(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT, c.parkID)
	var err error
	if cerr := raw.Control(func(fd uintptr) { err = unix.EpollCtl(p.epfd, op, int(fd), &ev) }); cerr != nil || err != nil {
		p.remove(c)
		return false
	}
	c.parkAdded = true
	return true
}

// remove forgets c; its descriptor leaves the set when it is closed, and
// a parked connection is only resumed or closed.
func (p *idleParker) remove(c *h1ServerConn) {
	if p == nil {
		return
	}
	p.mu.Lock()
	delete(p.conns, c.parkID)
	p.mu.Unlock()
}

// run takes up, for ever, the parked connections whose next request (or
// close) arrived.
func (p *idleParker) run() {
	p.raw.Read(func(uintptr) bool {
		for {
			n, err := unix.EpollWait(p.epfd, p.evs[:], 0)
			if err != nil || n <= 0 {
				return false // wait for Go's poller
			}
			for _, ev := range p.evs[:n] {
				id := epollID(ev)
				p.mu.Lock()
				c := p.conns[id]
				delete(p.conns, id)
				p.mu.Unlock()
				if c != nil {
					c.unpark()
				}
			}
		}
	})
}
