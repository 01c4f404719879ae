//go:build linux

package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Many connections, each exchanging many times with an upstream that
// answers at once, after a pause, or in two pieces: every wait in the
// answer poller must end with its answer there to read. A lost wake-up
// (the poller parked while answers waited in its set) hangs the test.
func TestAnswerPollerLosesNoAnswer(t *testing.T) {
	p := answerPollerOrSkip(t)
	addr := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch i % 3 {
			case 1:
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			case 2:
				c.Write([]byte(line[:1]))
				time.Sleep(50 * time.Microsecond)
				line = line[1:]
			}
			c.Write([]byte(line))
		}
	})
	const conns, exchanges = 48, 150
	// A wake with nothing to read happens (an earlier answer's second
	// piece reported late): reads then wait in Go's poller. But it must
	// be rare; a waiter that kept earlier readiness would see it on every
	// delayed answer.
	var spurious atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for k := range conns {
		wg.Go(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			w := p.watch(nc)
			if w == nil {
				errs <- fmt.Errorf("connection %d not watched", k)
				return
			}
			defer w.forgetConn()
			br := bufio.NewReader(nc)
			for i := range exchanges {
				msg := fmt.Sprintf("%d-%d\n", k, i)
				w.forget()
				if _, err := nc.Write([]byte(msg)); err != nil {
					errs <- err
					return
				}
				w.wait()
				if br.Buffered() == 0 && !readable(nc) {
					spurious.Add(1)
				}
				got, err := br.ReadString('\n')
				if err != nil || got != msg {
					errs <- fmt.Errorf("connection %d exchange %d: got %q, %v", k, i, got, err)
					return
				}
			}
		})
	}
	waitWithin(t, &wg, 60*time.Second, "exchanges hang: a wait was never woken")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Less(t, spurious.Load(), int64(conns*exchanges/20), "woken with nothing to read")
}

// readable reports, without reading or waiting, whether nc has bytes to
// read.
func readable(nc net.Conn) bool {
	var n int
	var err error
	var b [1]byte
	rawConnOf(nc).Control(func(fd uintptr) {
		n, _, err = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	})
	return err == nil && n > 0
}

// waitWithin waits for wg, failing the test with msg after d.
func waitWithin(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// answerPollerOrSkip returns the process's answer poller, or skips the
// test where there is none (VIGIL_LB_ANSWER_POLLER=off).
func answerPollerOrSkip(t *testing.T) *answerPoller {
	p := answerPollerOf()
	if p == nil {
		t.Skip("no answer poller")
	}
	return p
}

// dialWatched dials addr and adds the connection to p, both undone at the
// test's end.
func dialWatched(t *testing.T, p *answerPoller, addr string) (net.Conn, *answerWait) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	w := p.watch(nc)
	require.NotNil(t, w)
	t.Cleanup(w.forgetConn)
	return nc, w
}

// A waiter is woken by wake (an abort) though no answer comes, and one
// whose answer came before it waited does not wait.
func TestAnswerWaitWakeAndEarlyAnswer(t *testing.T) {
	p := answerPollerOrSkip(t)
	addr := serveConns(t, func(c net.Conn) { io.Copy(c, c) })
	nc, w := dialWatched(t, p, addr)

	w.forget()
	time.AfterFunc(20*time.Millisecond, w.wake)
	start := time.Now()
	w.wait()
	require.GreaterOrEqual(t, time.Since(start), 15*time.Millisecond, "waited without an answer or a wake")

	w.forget()
	_, err := nc.Write([]byte("x"))
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond) // the echo arrives and is harvested
	start = time.Now()
	w.wait()
	require.Less(t, time.Since(start), 10*time.Millisecond)
	b := make([]byte, 1)
	_, err = io.ReadFull(nc, b)
	require.NoError(t, err)
}

// An answer that arrives while the harvester is busy, and whose readiness
// Go's poller takes before the harvester parks again, still wakes its
// waiter: the kick makes the set readable after the park began. Without
// it the park would wait for a further answer, and here none comes.
func TestAnswerPollerWakesForAnswersReportedBeforeItsPark(t *testing.T) {
	p := answerPollerOrSkip(t)
	addr := serveConns(t, func(c net.Conn) { io.Copy(c, c) })
	victim, vw := dialWatched(t, p, addr)
	var loads []net.Conn
	var lws []*answerWait
	for range 12 {
		nc, w := dialWatched(t, p, addr)
		loads, lws = append(loads, nc), append(lws, w)
	}

	// The victim waits; its request leaves from the hook, just before a
	// kicked park, and the hook then idles long enough for Go's poller to
	// take the set's readiness.
	vw.forget()
	woken := make(chan struct{})
	go func() { vw.wait(); close(woken) }()
	fired := make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			victim.Write([]byte("v"))
			time.Sleep(20 * time.Millisecond)
			close(fired)
		})
	}
	beforeKickedPark.Store(&hook)
	defer beforeKickedPark.Store(nil)

	// Bursts of answers make the harvester yield (a batch of busyBatch
	// or more) and so reach a kicked park.
bursts:
	for attempt := 0; ; attempt++ {
		select {
		case <-fired:
			break bursts
		default:
		}
		require.Less(t, attempt, 200, "the harvester never yielded")
		var wg sync.WaitGroup
		for i, nc := range loads {
			lws[i].forget()
			nc.Write([]byte("x"))
		}
		for i, nc := range loads {
			wg.Go(func() {
				lws[i].wait()
				io.ReadFull(nc, make([]byte, 1))
			})
		}
		waitWithin(t, &wg, 2*time.Second, "answers came but their waiters were never woken")
	}
	select {
	case <-woken:
	case <-time.After(2 * time.Second):
		t.Fatal("the victim's answer came but its waiter was never woken")
	}
}

// Closed upstream connections leave the poller: its table does not grow
// with the connections a transport opens and closes over time.
func TestH1TransportForgetsClosedConnectionsInAnswerPoller(t *testing.T) {
	p := answerPollerOrSkip(t)
	addr := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	count := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waits)
	}
	tr := newH1Transport(PoolConfig{DialTimeout: Duration(time.Second), MaxIdleConnsPerUpstream: 4}, http.DefaultTransport.(*http.Transport).Clone())
	before := count()
	for range 50 {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+addr+"/", nil)
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, "ok", string(b))
		res.Body.Close()
	}
	tr.CloseIdleConnections()
	// Other tests' transports may add and remove their own meanwhile.
	require.Less(t, count()-before, 5, "closed connections stay in the answer poller")
}
