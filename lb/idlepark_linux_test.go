//go:build linux

package lb

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// parkAfter sets idleParkAfter for servers the test starts.
func parkAfter(t *testing.T, d time.Duration) {
	old := idleParkAfter
	idleParkAfter = d
	t.Cleanup(func() { idleParkAfter = old })
}

// okHandler answers its path.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })

func (k *keepAlive) mustGet(path string) {
	k.t.Helper()
	got, err := k.get(path)
	require.NoError(k.t, err)
	require.Equal(k.t, path, got)
}

// waitFor polls cond for up to 2 s.
func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); !cond(); {
		require.True(t, time.Now().Before(end), msg)
		time.Sleep(5 * time.Millisecond)
	}
}

// A keep-alive connection idle parkAfter gives up its goroutine and is
// taken up again by its next request, as often as it goes idle.
func TestH1ServerParksIdleConnections(t *testing.T) {
	parkAfter(t, 30*time.Millisecond)
	addr, hs := startH1(t, okHandler, ListenerConfig{IdleTimeout: Duration(5 * time.Second)})
	k := dialKeepAlive(t, addr)
	for i := range 4 {
		k.mustGet(fmt.Sprintf("/%d", i))
		waitFor(t, func() bool { return hs.parked.Load() == 1 }, "the idle connection did not park")
		// A parked connection has no goroutine reading it: its next
		// request is taken up by the parker.
	}
	k.mustGet("/last")
	require.Zero(t, hs.parked.Load(), "taken up, the connection is no longer parked")
	require.Equal(t, 1, connCount(hs))
}

// idle_timeout still closes a parked connection, at idle_timeout (not at
// parkAfter), and the connection is then forgotten.
func TestH1ServerClosesParkedConnectionsAtIdleTimeout(t *testing.T) {
	parkAfter(t, 30*time.Millisecond)
	addr, hs := startH1(t, okHandler, ListenerConfig{IdleTimeout: Duration(400 * time.Millisecond)})
	k := dialKeepAlive(t, addr)
	k.mustGet("/")
	start := time.Now()
	k.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := k.br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "a parked connection must close at idle_timeout")
	took := time.Since(start)
	require.GreaterOrEqual(t, took, 300*time.Millisecond, "closed before idle_timeout")
	require.Less(t, took, 1500*time.Millisecond)
	waitFor(t, func() bool { return connCount(hs) == 0 && hs.parked.Load() == 0 }, "the closed connection is still counted")
}

// The drain closes parked connections at once; shutdown does not wait for
// their idle_timeout.
func TestH1ServerShutdownClosesParkedConnections(t *testing.T) {
	parkAfter(t, 30*time.Millisecond)
	addr, hs := startH1(t, okHandler, ListenerConfig{IdleTimeout: Duration(time.Minute)})
	var ks []*keepAlive
	for range 3 {
		k := dialKeepAlive(t, addr)
		k.mustGet("/")
		ks = append(ks, k)
	}
	waitFor(t, func() bool { return hs.parked.Load() == 3 }, "the idle connections did not park")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, hs.shutdown(ctx))
	require.Less(t, time.Since(start), time.Second)
	for _, k := range ks {
		k.nc.SetReadDeadline(time.Now().Add(time.Second))
		_, err := k.br.ReadByte()
		require.ErrorIs(t, err, io.EOF)
	}
	require.Zero(t, hs.parked.Load())
}

// A client that closes its parked connection wakes it; the connection
// ends and is forgotten.
func TestH1ServerForgetsParkedConnectionsTheClientClosed(t *testing.T) {
	parkAfter(t, 30*time.Millisecond)
	addr, hs := startH1(t, okHandler, ListenerConfig{IdleTimeout: Duration(time.Minute)})
	k := dialKeepAlive(t, addr)
	k.mustGet("/")
	waitFor(t, func() bool { return hs.parked.Load() == 1 }, "the idle connection did not park")
	k.nc.Close()
	waitFor(t, func() bool { return connCount(hs) == 0 && hs.parked.Load() == 0 }, "the closed connection is still counted")
	p := idleParkerOf()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		require.NotEqual(t, hs, c.hs, "the parker still holds the closed connection")
	}
}

// Many connections going idle and busy again around parkAfter, and
// around idle_timeout (where the timer and the next request race): every
// request is answered whole, or the connection is closed cleanly before
// it; none hangs, and all end forgotten.
func TestH1ServerParkingUnderChurn(t *testing.T) {
	parkAfter(t, 20*time.Millisecond)
	addr, hs := startH1(t, okHandler, ListenerConfig{IdleTimeout: Duration(60 * time.Millisecond)})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			k := dialKeepAlive(t, addr)
			for j := range 12 {
				path := fmt.Sprintf("/%d/%d", i, j)
				got, err := k.get(path)
				if err != nil {
					// Closed at idle_timeout while the request was on its
					// way: a fresh connection carries on.
					k.nc.Close()
					k = dialKeepAlive(t, addr)
					if got, err = k.get(path); err != nil {
						t.Errorf("%s on a fresh connection: %v", path, err)
						return
					}
				}
				if got != path {
					t.Errorf("%s: got %q", path, got)
					return
				}
				time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond)
			}
			k.nc.Close()
		})
	}
	waitWithin(t, &wg, 30*time.Second, "a client hung")
	waitFor(t, func() bool { return connCount(hs) == 0 && hs.parked.Load() == 0 }, "connections are still counted")
}

// The metrics show the parked connections of a listener, and the answer
// poller's state.
func TestMetricsShowParkedConnectionsAndAnswerPoller(t *testing.T) {
	parkAfter(t, 30*time.Millisecond)
	b := newBackend(t, "b", nil)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Name: "web"})
	reg := prometheus.NewRegistry()
	srv, _ := startLBOn(t, cfg, reg)
	k := dialKeepAlive(t, srv.Addr())
	_, err := k.get("/")
	require.NoError(t, err)
	parked := "lb_http1_parked_connections{listener=" + cfg.Listeners[0].Name + ",}"
	waitFor(t, func() bool { return metricValues(t, reg)[parked] == 1 }, "the parked connection is not shown")
	_, err = k.get("/")
	require.NoError(t, err)
	values := metricValues(t, reg)
	require.Contains(t, values, parked)
	require.Zero(t, values[parked], "taken up again, it is no longer shown parked")
	_, ok := values["lb_answer_poller_loaded{}"]
	require.Equal(t, answerPollerOf() != nil, ok, "the answer poller's state is shown where there is one")
}

// A timer of an earlier park that fires after the connection parked
// again (its Stop lost the race with the firing) must not close it: the
// park's generation tells the two apart.
func TestH1ServerStaleParkTimerLeavesConnection(t *testing.T) {
	parkAfter(t, 30*time.Millisecond)
	addr, hs := startH1(t, okHandler, ListenerConfig{IdleTimeout: Duration(5 * time.Second)})
	k := dialKeepAlive(t, addr)
	k.mustGet("/a")
	waitFor(t, func() bool { return hs.parked.Load() == 1 }, "the idle connection did not park")
	var c *h1ServerConn
	hs.mu.Lock()
	for c = range hs.conns {
	}
	hs.mu.Unlock()
	c.mu.Lock()
	first := c.parkGen
	c.mu.Unlock()

	k.mustGet("/b")
	waitFor(t, func() bool { return hs.parked.Load() == 1 }, "the connection did not park again")
	c.parkExpired(first) // the first park's timer, late
	require.Equal(t, connParked, c.state.Load(), "a stale timer closed the connection")
	k.mustGet("/c")

	waitFor(t, func() bool { return hs.parked.Load() == 1 }, "the connection did not park a third time")
	c.mu.Lock()
	current := c.parkGen
	c.mu.Unlock()
	c.parkExpired(current) // this park's timer: closes it
	waitFor(t, func() bool { return connCount(hs) == 0 }, "the current park's timer did not close the connection")
	_, err := k.get("/d")
	require.Error(t, err)
}
