package lb

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadGen runs GET requests from n goroutines until stop is closed and
// counts results; any non-200 or transport error is a failure.
type loadGen struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startLoad(t *testing.T, c *http.Client, url string, n int) *loadGen {
	t.Helper()
	lg := &loadGen{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		lg.wg.Add(1)
		go func() {
			defer lg.wg.Done()
			for {
				select {
				case <-lg.stop:
					return
				default:
				}
				res, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = &statusError{res.StatusCode}
					}
				}
				if err != nil {
					lg.failed.Add(1)
					lg.firstErr.CompareAndSwap(nil, err)
					continue
				}
				lg.ok.Add(1)
			}
		}()
	}
	return lg
}

func (lg *loadGen) finish() { close(lg.stop); lg.wg.Wait() }

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

func TestUpstreamKilledUnderLoadFailsNothing(t *testing.T) {
	b1, b2, b3 := newBackend(t, "b1", nil), newBackend(t, "b2", nil), newBackend(t, "b3", nil)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b1, b2, b3), Policy: "round_robin"}, RouteConfig{Retries: ptr(2)})
	cfg.AccessLog = ptr(false)
	srv, base := startLB(t, cfg)
	lg := startLoad(t, newClient(t), base+"/", 8)

	require.Eventually(t, func() bool { return b2.hits.Load() > 200 }, 10*time.Second, 5*time.Millisecond)
	// Kill b2 hard: drop its listener and every open connection, so
	// requests in flight on it fail mid-way.
	b2.Listener.Close()
	b2.CloseClientConnections()
	killedAt := lg.ok.Load()
	require.Eventually(t, func() bool { return lg.ok.Load() > killedAt+2000 }, 20*time.Second, 5*time.Millisecond)
	lg.finish()

	require.Zero(t, lg.failed.Load(), "failed idempotent requests: first error %v", lg.firstErr.Load())
	u := srv.state.Load().pools["p"].upstreams[1]
	require.Equal(t, b2.addr(), u.Addr)
	require.Greater(t, u.ejectedUntil.Load(), int64(0), "the dead upstream was ejected")
}

func TestSlowUpstreamIsEjectedAndComesBack(t *testing.T) {
	var slow atomic.Bool
	slowOnce := make(chan struct{})
	handler := func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-r.Context().Done(): // the proxy gave up on this try
			case <-slowOnce:
			}
			return
		}
		w.Write([]byte("b2"))
	}
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", handler)
	t.Cleanup(func() { close(slowOnce) })
	cfg := oneRoute(PoolConfig{
		Upstreams: addrs(b1, b2), Policy: "round_robin",
		Outlier: OutlierConfig{ConsecutiveFailures: 2, BaseEjection: Duration(300 * time.Millisecond), MaxEjection: Duration(time.Second)},
	}, RouteConfig{TryTimeout: Duration(50 * time.Millisecond), Retries: ptr(1)})
	srv, base := startLB(t, cfg)
	c := newClient(t)
	u2 := srv.state.Load().pools["p"].upstreams[1]

	slow.Store(true)
	// Every request still succeeds (the slow try times out and is retried
	// on b1) until b2 is ejected.
	require.Eventually(t, func() bool {
		code, body := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "b1", body)
		return u2.ejectedUntil.Load() > time.Now().UnixNano()
	}, 5*time.Second, time.Millisecond)
	hitsAtEjection := b2.hits.Load()
	for i := 0; i < 20; i++ {
		code, body := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "b1", body)
	}
	require.Equal(t, hitsAtEjection, b2.hits.Load(), "an ejected upstream gets no traffic")

	// It recovers; after the ejection time it is back in rotation.
	slow.Store(false)
	require.Eventually(t, func() bool {
		_, body := get(t, c, base+"/", nil)
		return body == "b2"
	}, 5*time.Second, 10*time.Millisecond)
}

func TestActiveHTTPHealthCheck(t *testing.T) {
	var sick atomic.Bool
	handler := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("b2"))
	}
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", handler)
	cfg := oneRoute(PoolConfig{
		Upstreams: addrs(b1, b2),
		HealthCheck: &HealthCheckConfig{Type: "http", Path: "/healthz", Interval: Duration(20 * time.Millisecond),
			Timeout: Duration(20 * time.Millisecond), UnhealthyThreshold: 2, HealthyThreshold: 2},
	}, RouteConfig{})
	srv, base := startLB(t, cfg)
	u2 := srv.state.Load().pools["p"].upstreams[1]
	c := newClient(t)

	sick.Store(true)
	require.Eventually(t, func() bool { return !u2.healthy.Load() }, 5*time.Second, 5*time.Millisecond)
	for i := 0; i < 10; i++ {
		_, body := get(t, c, base+"/", nil)
		require.Equal(t, "b1", body)
	}
	sick.Store(false)
	require.Eventually(t, func() bool { return u2.healthy.Load() }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { _, body := get(t, c, base+"/", nil); return body == "b2" }, 5*time.Second, time.Millisecond)
}

func TestCircuitBreakerRefusesAbovePending(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b), MaxPending: 2}, RouteConfig{})
	srv, base := startLB(t, cfg)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release) // a failed test's requests must end
		}
	})
	c := newClient(t)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); code, _ := get(t, c, base+"/", nil); require.Equal(t, http.StatusOK, code) }()
	}
	<-entered
	<-entered
	code, _ := get(t, c, base+"/", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	// A reload (here a new route name) keeps counting the requests the
	// old generation still runs: it must not admit max_pending more.
	cfg2 := oneRoute(PoolConfig{Upstreams: addrs(b), MaxPending: 2}, RouteConfig{Name: "r2"})
	require.NoError(t, srv.Reload(cfg2))
	// Admitted, it would wait for release: a client that gives up fails
	// the test instead of hanging it.
	code, _ = get(t, &http.Client{Timeout: 3 * time.Second}, base+"/", nil)
	require.Equal(t, http.StatusServiceUnavailable, code, "admitted past max_pending after a reload")
	close(release)
	wg.Wait()
	code, _ = get(t, c, base+"/", nil)
	require.Equal(t, http.StatusOK, code)
}

func TestTotalTimeoutGives504(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Timeout: Duration(100 * time.Millisecond)}))
	start := time.Now()
	code, _ := get(t, newClient(t), base+"/", nil)
	require.Equal(t, http.StatusGatewayTimeout, code)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestNonIdempotentNotRetriedAfterSend(t *testing.T) {
	b1 := newBackend(t, "b1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	b2 := newBackend(t, "b2", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b1, b2)}, RouteConfig{Retries: ptr(3)}))
	res, err := newClient(t).Post(base+"/", "text/plain", stringsReader("x"))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusBadGateway, res.StatusCode)
	require.Equal(t, int64(1), b1.hits.Load()+b2.hits.Load(), "a POST is sent once")

	// An idempotent GET is retried on the other upstream, and since both
	// fail the client sees the upstream's 502.
	code, _ := get(t, newClient(t), base+"/", nil)
	require.Equal(t, http.StatusBadGateway, code)
	require.Equal(t, int64(3), b1.hits.Load()+b2.hits.Load())
}

func TestPostRetriedAfterConnectFailure(t *testing.T) {
	dead := newBackend(t, "dead", nil)
	deadAddr := dead.addr()
	dead.Close()
	live := newBackend(t, "live", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	})
	cfg := oneRoute(PoolConfig{Upstreams: []string{deadAddr, live.addr()}, Policy: "round_robin"}, RouteConfig{Retries: ptr(1)})
	_, base := startLB(t, cfg)
	c := newClient(t)
	for i := 0; i < 4; i++ {
		res, err := c.Post(base+"/", "text/plain", stringsReader("payload"))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "payload", string(body))
	}
}

func TestRetryBudgetCapsRetries(t *testing.T) {
	b := newRetryBudget(RetryBudget{Ratio: ptr(0.1), MinPerSecond: ptr(1)})
	allowed := 0
	for i := 0; i < 100; i++ {
		b.request()
		if b.tryRetry() {
			allowed++
		}
	}
	// 10 (1/s over the 10 s window) + 10% of 100 requests.
	require.Equal(t, 20, allowed)
}

func TestShutdownDrainsInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Write([]byte("done"))
	})
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() { code, body := get(t, newClient(t), base+"/", nil); got <- result{code, body} }()
	<-entered
	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownDone <- srv.Shutdown(ctx)
	}()
	// New connections are refused while draining.
	require.Eventually(t, func() bool {
		_, err := http.Get(base + "/")
		return err != nil
	}, 5*time.Second, 5*time.Millisecond)
	close(release)
	r := <-got
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "done", r.body)
	require.NoError(t, <-shutdownDone)
}

// The first requests of a new second, counted at once by many
// goroutines, are all counted: the reset of the second's slot and the
// counts are one compare-and-swap. The old slot, ten seconds before,
// no longer counts.
func TestRetryBudgetCountsEveryRequestOfANewSecond(t *testing.T) {
	b := newRetryBudget(RetryBudget{})
	t0 := time.Unix(1_800_000_000, 0)
	for range 1000 {
		b.requestAt(t0)
	}
	t1 := t0.Add(budgetWindow * time.Second) // the same slot
	for range 50 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					b.requestAt(t1)
				}
			})
		}
		wg.Wait()
	}
	require.EqualValues(t, 8*100*50, countIn(&b.buckets[nowSec(t1)%budgetWindow].requests, nowSec(t1)))
	require.Zero(t, countIn(&b.buckets[nowSec(t1)%budgetWindow].requests, nowSec(t1)+budgetWindow), "a slot ten seconds old")
}

// TestRetryBudgetHoldsUnderConcurrentRetries: retries checked at the same
// instant by many goroutines together pass no more than the budget (10
// here: 1/s over the 10 s window, no requests), since each books before
// it checks.
func TestRetryBudgetHoldsUnderConcurrentRetries(t *testing.T) {
	for range 200 {
		b := newRetryBudget(RetryBudget{Ratio: ptr(0.0), MinPerSecond: ptr(1)})
		var allowed atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				<-start
				for range 4 {
					if b.tryRetry() {
						allowed.Add(1)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		require.LessOrEqual(t, allowed.Load(), int64(10))
		require.Positive(t, allowed.Load())
	}
}
