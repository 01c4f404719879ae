package lb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	b1, b2, b3 := newBackend(t, "b1", nil), newBackend(t, "b2", nil), newBackend(t, "b3", nil)
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b1, b2, b3), Policy: "round_robin"}, RouteConfig{}))
	c := newClient(t)
	for i := 0; i < 300; i++ {
		code, _ := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
	}
	for _, b := range []*backend{b1, b2, b3} {
		require.Equal(t, int64(100), b.hits.Load(), b.name)
	}
}

func TestLeastRequestsAvoidsBusyUpstream(t *testing.T) {
	release := make(chan struct{})
	hold := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		w.Write([]byte(w.Header().Get("X-Backend")))
	}
	b1, b2, b3 := newBackend(t, "b1", hold), newBackend(t, "b2", hold), newBackend(t, "b3", hold)
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b1, b2, b3), Policy: "least_requests"}, RouteConfig{}))
	c := newClient(t)

	// Park two long requests; least-requests puts them on two different
	// upstreams, leaving exactly one idle.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := get(t, c, base+"/hold", nil)
			require.Equal(t, http.StatusOK, code)
		}()
	}
	pool := srv.state.Load().pools["p"]
	require.Eventually(t, func() bool {
		busy := 0
		for _, u := range pool.upstreams {
			busy += int(u.Inflight())
		}
		return busy == 2
	}, 5*time.Second, 5*time.Millisecond)
	var idle string
	for _, u := range pool.upstreams {
		require.LessOrEqual(t, u.Inflight(), int64(1), "two held requests on one upstream")
		if u.Inflight() == 0 {
			idle = u.Addr
		}
	}
	before := map[string]int64{b1.addr(): b1.hits.Load(), b2.addr(): b2.hits.Load(), b3.addr(): b3.hits.Load()}
	for i := 0; i < 30; i++ {
		code, _ := get(t, c, base+"/fast", nil)
		require.Equal(t, http.StatusOK, code)
	}
	for _, b := range []*backend{b1, b2, b3} {
		got := b.hits.Load() - before[b.addr()]
		if b.addr() == idle {
			require.Equal(t, int64(30), got, "the idle upstream takes all sequential requests")
		} else {
			require.Zero(t, got, "busy upstream %s got requests", b.name)
		}
	}
	close(release)
	wg.Wait()
}

func TestP2CEWMAShunsSlowUpstreamUntilItRecovers(t *testing.T) {
	var isSlow atomic.Bool
	isSlow.Store(true)
	slow := func(w http.ResponseWriter, r *http.Request) {
		if isSlow.Load() {
			time.Sleep(15 * time.Millisecond) // the upstream is slow by nature, not a sync point
		}
		w.Write([]byte("slow"))
	}
	fast1, fast2, slowB := newBackend(t, "fast1", nil), newBackend(t, "fast2", nil), newBackend(t, "slow", slow)
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(fast1, fast2, slowB), Policy: "p2c_ewma"}, RouteConfig{}))
	srv.state.Load().pools["p"].picker.(*P2CEWMA).decay.Store(int64(200 * time.Millisecond))
	c := newClient(t)
	for i := 0; i < 400; i++ {
		code, _ := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
	}
	// Round robin would give it 1/3. With two random choices out of three,
	// the slow one only wins a draw before its first sample, so it should
	// see almost nothing.
	require.Less(t, slowB.hits.Load(), int64(20), "slow upstream got %d of 400", slowB.hits.Load())
	// Both fast upstreams share the rest. Not evenly: the policy follows measured latency,
	// and on a loaded machine one of two equal upstreams can look faster for a stretch
	// (a 146/234 split was seen under load), so the check is that both are used.
	require.Greater(t, fast1.hits.Load(), int64(100))
	require.Greater(t, fast2.hits.Load(), int64(100))

	// Once it is fast again, its faded estimate lets it win a draw, and
	// the fresh sample keeps it in rotation.
	isSlow.Store(false)
	require.Eventually(t, func() bool {
		for i := 0; i < 30; i++ {
			get(t, c, base+"/", nil)
		}
		before := slowB.hits.Load()
		for i := 0; i < 300; i++ {
			get(t, c, base+"/", nil)
		}
		return slowB.hits.Load()-before > 50
	}, 10*time.Second, 50*time.Millisecond)
}

func TestConsistentHashIsStickyAndStable(t *testing.T) {
	bs := []*backend{newBackend(t, "b1", nil), newBackend(t, "b2", nil), newBackend(t, "b3", nil), newBackend(t, "b4", nil)}
	cfg := oneRoute(PoolConfig{Upstreams: addrs(bs...), Policy: "consistent_hash", HashHeader: "X-Shard-Key"}, RouteConfig{})
	srv, base := startLB(t, cfg)
	c := newClient(t)

	owner := map[string]string{}
	spread := map[string]int{}
	for i := 0; i < 200; i++ {
		key := fmt.Sprintf("person-%d", i)
		_, name := get(t, c, base+"/", map[string]string{"X-Shard-Key": key})
		owner[key] = name
		spread[name]++
	}
	require.Len(t, spread, 4, "keys reach every upstream")
	for name, n := range spread {
		require.Greater(t, n, 20, "%s owns too few keys: %v", name, spread)
	}
	for i := 0; i < 50; i++ { // sticky
		key := fmt.Sprintf("person-%d", i)
		_, name := get(t, c, base+"/", map[string]string{"X-Shard-Key": key})
		require.Equal(t, owner[key], name, key)
	}

	// Remove b4: only its keys may move.
	cfg2 := oneRoute(PoolConfig{Upstreams: addrs(bs[:3]...), Policy: "consistent_hash", HashHeader: "X-Shard-Key"}, RouteConfig{})
	require.NoError(t, srv.Reload(cfg2))
	moved := 0
	for key, was := range owner {
		_, name := get(t, c, base+"/", map[string]string{"X-Shard-Key": key})
		if was != "b4" {
			require.Equal(t, was, name, "key %s moved though its owner stayed", key)
		} else {
			require.NotEqual(t, "b4", name)
			moved++
		}
	}
	require.Equal(t, spread["b4"], moved)
}

func BenchmarkPickers(b *testing.B) {
	ups := []*Upstream{newUpstream("a:1"), newUpstream("b:1"), newUpstream("c:1"), newUpstream("d:1")}
	r := newRequest(b, "GET", "http://x/", "")
	r.Header.Set("X-Key", "person-42")
	for _, p := range []struct {
		name string
		p    Picker
	}{
		{"round_robin", &RoundRobin{}},
		{"least_requests", &LeastRequests{}},
		{"p2c_ewma", new(P2CEWMA)},
		{"consistent_hash", newConsistentHash("X-Key", ups)},
	} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p.p.Pick(r, ups, nil) == nil {
					b.Fatal("nil pick")
				}
			}
		})
	}
}

func BenchmarkOutboundHeader(b *testing.B) {
	r := newRequest(b, "GET", "http://api.example.com/v1/persons?limit=10", "")
	r.RemoteAddr = "10.1.2.3:5555"
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Authorization", "Bearer abc")
	r.Header.Set("X-Request-Id", "0123456789abcdef")
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	r.Header.Set("Connection", "keep-alive")
	b.ReportAllocs()
	for b.Loop() {
		h := outboundHeader(r, "", "")
		if h.Get("X-Forwarded-For") != "10.1.2.3" {
			b.Fatal("no X-Forwarded-For")
		}
	}
}

// BenchmarkProxyHTTP1 is the whole request path over loopback (client →
// lb → upstream), for spotting regressions; bench/lb compares with peers.
func BenchmarkProxyHTTP1(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	cfg := oneRoute(PoolConfig{Upstreams: []string{up.Listener.Addr().String()}}, RouteConfig{})
	cfg.AccessLog = ptr(false)
	srv, err := New(cfg, testLogger(), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := "http://" + srv.Addr() + "/"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

// forwardHeader must send upstream exactly what outboundHeader would,
// whether it adds to the client's header in place or copies it.
func TestForwardHeaderMatchesOutboundHeader(t *testing.T) {
	cases := []map[string][]string{
		{},
		{"Accept": {"*/*"}, "X-Request-Id": {"abc"}},
		{"User-Agent": {"curl"}, "X-Forwarded-Host": {"front"}, "X-Forwarded-Proto": {"https"}},
		{"X-Forwarded-For": {"1.2.3.4"}},
		{"Connection": {"keep-alive, X-Secret"}, "X-Secret": {"s"}, "Accept": {"a", "b"}},
		{"Te": {"trailers"}, "Content-Type": {"application/grpc"}},
		{"Keep-Alive": {"timeout=5"}},
	}
	for i, h := range cases {
		mk := func() *http.Request {
			r := newRequest(t, "GET", "http://api.example.com/x", "")
			r.RemoteAddr = "10.1.2.3:5555"
			r.Header = http.Header{}
			for k, vv := range h {
				r.Header[k] = append([]string(nil), vv...)
			}
			return r
		}
		want := outboundHeader(mk(), "", "")
		got := forwardHeader(mk(), "", "")
		require.Equal(t, want, got, "case %d", i)
	}
}
