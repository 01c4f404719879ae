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
	"net/http/httptest"
	"runtime"
	rtmetrics "runtime/metrics"
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

// answerPollerOrSkip returns a running answer poller of the test's own,
// used whatever the load (pinned), or skips the test where the process
// has none (VIGIL_LB_ANSWER_POLLER=off). Its harvester and descriptors
// outlive the test: a poller never stops.
func answerPollerOrSkip(t *testing.T) *answerPoller {
	t.Helper()
	p := newIdlePoller(t)
	p.pin(true)
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
	p := answerPollerOf() // the transport's
	if p == nil {
		t.Skip("no answer poller")
	}
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

// newIdlePoller returns a running answer poller of the test's own that
// follows the load as the process's does (not pinned; idle at first).
func newIdlePoller(t *testing.T) *answerPoller {
	t.Helper()
	if answerPollerOf() == nil {
		t.Skip("no answer poller")
	}
	p, err := newAnswerPoller()
	require.NoError(t, err)
	go p.run()
	return p
}

// While the proxy is not loaded, waits do not enter the poller and its
// harvester sleeps: answers arriving on watched connections cost it no
// harvest. Loaded, the poller wakes its waiters; unloaded again, it
// sleeps again once its waiters are gone.
func TestAnswerPollerSleepsWhileNotLoaded(t *testing.T) {
	p := newIdlePoller(t)
	addr := serveConns(t, func(c net.Conn) { io.Copy(c, c) })
	nc, w := dialWatched(t, p, addr)
	exchange := func() {
		t.Helper()
		_, err := nc.Write([]byte("x"))
		require.NoError(t, err)
		_, err = io.ReadFull(nc, make([]byte, 1))
		require.NoError(t, err)
	}
	// A harvester parked when the load went sleeps after its next
	// harvest: it may make one more.
	quiet := func(what string) {
		t.Helper()
		before := p.harvests.Load()
		for range 20 {
			require.False(t, w.enter(), "a wait entered an unloaded poller")
			exchange()
		}
		time.Sleep(20 * time.Millisecond)
		require.LessOrEqual(t, p.harvests.Load()-before, int64(1), "the harvester harvested %s", what)
	}
	quiet("before the proxy was ever loaded")

	p.setLoaded(true)
	for range 20 {
		require.True(t, w.enter(), "a wait stayed out of a loaded poller")
		w.forget()
		_, err := nc.Write([]byte("x"))
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { w.wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("a loaded poller never woke its waiter")
		}
		w.leave()
		_, err = io.ReadFull(nc, make([]byte, 1))
		require.NoError(t, err)
	}
	require.Positive(t, p.harvests.Load())

	p.setLoaded(false)
	quiet("after the load went")
}

// Waits that enter and leave while the load switches on and off all end
// with their answers, at once: a harvester going to sleep never leaves a
// waiter that entered in its set (enter counts itself in before it looks
// at loaded a second time; the harvester looks at loaded before it
// counts). The load stays off for long stretches, so that a stranded
// waiter shows as a slow exchange rather than being rescued by the next
// switch on.
func TestAnswerPollerLoadSwitchLosesNoWaiter(t *testing.T) {
	p := newIdlePoller(t)
	addr := serveConns(t, func(c net.Conn) { io.Copy(c, c) })
	stop := make(chan struct{})
	var flips sync.WaitGroup
	flips.Go(func() {
		for {
			p.setLoaded(true)
			time.Sleep(time.Millisecond)
			p.setLoaded(false)
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	const conns = 16
	var entered, exchanges atomic.Int64
	var slowest atomic.Int64
	end := time.Now().Add(1200 * time.Millisecond)
	var wg sync.WaitGroup
	for range conns {
		nc, w := dialWatched(t, p, addr)
		wg.Go(func() {
			b := make([]byte, 1)
			for time.Now().Before(end) {
				start := time.Now()
				in := w.enter()
				w.forget()
				if _, err := nc.Write([]byte("x")); err != nil {
					t.Error(err)
					return
				}
				if in {
					entered.Add(1)
					w.wait()
					w.leave()
				}
				if _, err := io.ReadFull(nc, b); err != nil {
					t.Error(err)
					return
				}
				exchanges.Add(1)
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		})
	}
	waitWithin(t, &wg, 20*time.Second, "a waiter that entered the poller was never woken")
	close(stop)
	flips.Wait()
	require.Positive(t, entered.Load())
	require.Less(t, entered.Load(), exchanges.Load(), "the load never switched off")
	require.Less(t, time.Duration(slowest.Load()), 150*time.Millisecond, "an exchange waited for the load to switch on again")
}

// medianSince finds the bucket of the median of what a histogram counted
// since earlier counts.
func TestMedianSince(t *testing.T) {
	h := &rtmetrics.Float64Histogram{
		Buckets: []float64{0, 1e-5, 1e-4, 1e-3, 1e-2},
		Counts:  []uint64{10, 5, 7, 100},
	}
	_, ok := medianSince(h, []uint64{10, 5, 7, 100})
	require.False(t, ok, "nothing counted since")
	med, ok := medianSince(h, []uint64{0, 5, 7, 100}) // 10 new in [0, 1e-5)
	require.True(t, ok)
	require.Equal(t, 1e-5, med)
	med, _ = medianSince(h, []uint64{9, 5, 6, 98}) // 1 + 1 + 2 new
	require.Equal(t, 1e-3, med)
	med, _ = medianSince(h, []uint64{8, 2, 7, 100}) // 2 + 3 new
	require.Equal(t, 1e-4, med)
}

// sampleLoad turns the poller on when Go's scheduler is saturated
// (goroutines wait long to run) and off when it is not.
func TestSampleLoadFollowsSchedulingLatency(t *testing.T) {
	p := newIdlePoller(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	sample := func() {
		p.sampleNext.Store(0) // do not wait for sampleEvery
		p.sampleLoad()
	}
	sample() // the baseline

	// 32 goroutines that each run 200 µs between yields: each waits
	// about 6 ms to run again.
	stop := make(chan struct{})
	var spin sync.WaitGroup
	for range 32 {
		spin.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for end := time.Now().Add(200 * time.Microsecond); time.Now().Before(end); {
				}
				runtime.Gosched()
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for !p.loaded.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		sample()
	}
	close(stop)
	spin.Wait()
	require.True(t, p.loaded.Load(), "saturated, the poller stayed off")

	// Idle: goroutines that sleep and wake run at once.
	sample() // the saturated window's end
	deadline = time.Now().Add(5 * time.Second)
	for p.loaded.Load() && time.Now().Before(deadline) {
		for range 20 {
			time.Sleep(time.Millisecond)
		}
		sample()
	}
	require.False(t, p.loaded.Load(), "idle, the poller stayed on")
}

// usePollerLoaded has the process's answer poller used whatever the load
// for the test's duration.
func usePollerLoaded(t *testing.T) *answerPoller {
	t.Helper()
	p := answerPollerOf()
	if p == nil {
		t.Skip("no answer poller")
	}
	p.pin(true)
	t.Cleanup(func() {
		p.sampleMu.Lock()
		p.pinned = false
		p.sampleMu.Unlock()
		p.setLoaded(false)
	})
	return p
}

// The transport's exchanges wait for their answers in a loaded poller
// (writeAwaitAnswer) and get them whole, from an upstream that answers at
// once or after a pause, over connections kept alive.
func TestH1TransportAwaitsAnswersInLoadedPoller(t *testing.T) {
	p := usePollerLoaded(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		}
		io.WriteString(w, r.URL.Path)
	}))
	defer up.Close()
	tr := newH1Transport(PoolConfig{DialTimeout: Duration(time.Second), MaxIdleConnsPerUpstream: 32}, http.DefaultTransport.(*http.Transport).Clone())
	defer tr.CloseIdleConnections()
	// Waits in the poller show in armed while they last.
	var sawArmed atomic.Bool
	watching := make(chan struct{})
	go func() {
		for {
			select {
			case <-watching:
				return
			default:
			}
			if p.armed.Load() > 0 {
				sawArmed.Store(true)
			}
			runtime.Gosched()
		}
	}()
	var wg sync.WaitGroup
	for k := range 24 {
		wg.Go(func() {
			for i := range 60 {
				path := fmt.Sprintf("/%d/%d", k, i)
				url := up.URL + path
				if i%3 == 0 {
					url += "?slow=1"
				}
				req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
				res, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || string(b) != path {
					t.Errorf("%s: got %q, %v", path, b, err)
					return
				}
			}
		})
	}
	waitWithin(t, &wg, 30*time.Second, "exchanges through a loaded poller hung")
	close(watching)
	require.True(t, sawArmed.Load(), "the answers were not awaited in the poller")
}
