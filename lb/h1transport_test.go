package lb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// closingUpstream answers every request with a keep-alive response and
// then closes the connection without saying so, as an upstream that
// restarts or times out idle connections does.
func closingUpstream(t *testing.T) (addr string, served func() int) {
	t.Helper()
	count := make(chan int, 1)
	count <- 0
	addr = serveConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		n := <-count
		count <- n + 1
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	return addr, func() int { n := <-count; count <- n; return n }
}

func TestH1TransportSurvivesUpstreamClosingIdleConnections(t *testing.T) {
	addr, served := closingUpstream(t)
	cfg := oneRoute(PoolConfig{Upstreams: []string{addr}}, RouteConfig{Retries: ptr(0)})
	_, base := startLB(t, cfg)
	c := newClient(t)
	for i, method := range []string{"GET", "POST", "DELETE", "POST", "GET", "POST"} {
		req, err := http.NewRequest(method, base+"/", nil)
		require.NoError(t, err)
		res, err := c.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "request %d (%s)", i, method)
		require.Equal(t, "ok", string(body))
		// Let the closed connection age past the probe threshold, as an
		// idle pooled connection would.
		time.Sleep(probeIdleAfter + 10*time.Millisecond) // models idle time, not synchronisation
	}
	require.Equal(t, 6, served())
}

// A connection the upstream closed moments ago is reused without a probe
// (it has not been idle for probeIdleAfter). Its FIN came before the
// request, so the request's write waits for an answer that never comes
// (writeAwaiter); the reset that the write provokes must end that wait,
// and the idempotent request must be retried on a fresh connection.
func TestH1TransportRetriesOnConnectionClosedJustBefore(t *testing.T) {
	addr, served := closingUpstream(t)
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{addr}}, RouteConfig{Retries: ptr(0)}))
	c := newClient(t)
	c.Timeout = 5 * time.Second
	for i, method := range []string{"GET", "DELETE", "GET", "HEAD", "GET"} {
		req, err := http.NewRequest(method, base+"/", nil)
		require.NoError(t, err)
		res, err := c.Do(req)
		require.NoError(t, err, "request %d (%s)", i, method)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, "request %d (%s)", i, method)
		// Time for the upstream's FIN to arrive, well short of the probe.
		time.Sleep(probeIdleAfter / 10) // models idle time, not synchronisation
	}
	require.Equal(t, 5, served())
}

// A request head larger than the socket buffers, to an upstream that
// stopped reading, blocks its write; a client that gives up must still
// end that write and free the exchange.
func TestH1TransportClientGoneAbortsLargeHeadWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		accepted <- c // never read
	}()
	t.Cleanup(func() {
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	cfg := oneRoute(PoolConfig{Upstreams: []string{ln.Addr().String()}}, RouteConfig{Retries: ptr(0)})
	cfg.Listeners[0].MaxHeaderBytes = 16 << 20
	srv, base := startLB(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	require.NoError(t, err)
	big := strings.Repeat("h", 1<<20)
	for i := range 8 {
		req.Header.Set(fmt.Sprintf("X-Big-%d", i), big)
	}
	errc := make(chan error, 1)
	go func() {
		res, err := newClient(t).Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	up := srv.state.Load().pools["p"].Upstreams()[0]
	require.Eventually(t, func() bool { return up.Inflight() == 1 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the head's write is stuck by now; models the client's patience
	cancel()
	require.Error(t, <-errc)
	require.Eventually(t, func() bool { return up.Inflight() == 0 }, 5*time.Second, 5*time.Millisecond,
		"the exchange still hangs in its write")
}

func TestH1TransportKeepsConnectionsAlive(t *testing.T) {
	var conns int
	connSeen := make(chan struct{}, 100)
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("b"))
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			connSeen <- struct{}{}
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{b.Listener.Addr().String()}}, RouteConfig{}))
	c := newClient(t)
	for i := 0; i < 50; i++ {
		code, body := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "b", body)
	}
	for len(connSeen) > 0 {
		<-connSeen
		conns++
	}
	require.Equal(t, 1, conns, "sequential requests reuse one upstream connection")

	// HEAD and 204/304 responses have no body and must not wedge the pool.
	for _, path := range []string{"/head", "/nocontent"} {
		method := "GET"
		if path == "/head" {
			method = "HEAD"
		}
		req, _ := http.NewRequest(method, base+path, nil)
		res, err := c.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	code, body := get(t, c, base+"/", nil)
	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.HasPrefix(body, "b"))
}

// A client that gives up must free the upstream connection whether the lb
// is waiting for the response head or for the rest of a sized body: the
// fast path arms cancellation only before reads that would block.
func TestH1TransportClientGoneAbortsUpstreamWait(t *testing.T) {
	for _, stall := range []string{"head", "body"} {
		t.Run(stall, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { ln.Close() })
			got, closed := make(chan struct{}, 1), make(chan struct{}, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				if stall == "body" {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
				}
				got <- struct{}{}
				// The lb closes the connection when it abandons the exchange.
				c.Read(make([]byte, 1))
				closed <- struct{}{}
			}()
			_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{ln.Addr().String()}}, RouteConfig{Retries: ptr(0)}))
			ctx, cancel := context.WithCancel(context.Background())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() {
				res, err := newClient(t).Do(req)
				if err == nil {
					_, err = io.ReadAll(res.Body)
					res.Body.Close()
				}
				errc <- err
			}()
			<-got
			cancel()
			require.Error(t, <-errc)
			require.Eventually(t, func() bool { return len(closed) == 1 }, 5*time.Second, 5*time.Millisecond)
		})
	}
}

// TestStdTransportUploadsWithoutACopyBufferEach: net/http's transport,
// which carries the uploads the h1Transport leaves to it, writes their
// bodies through a pooled buffer (pooledReadFromConn): a TCPConn's own
// ReadFrom made a new 32 KiB one per upload.
func TestStdTransportUploadsWithoutACopyBufferEach(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop what it is given")
	}
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	})
	cfg := PoolConfig{Upstreams: addrs(b), Protocol: "http1", MaxIdleConnsPerUpstream: 4}
	tr := newStdTransport(cfg)
	t.Cleanup(tr.CloseIdleConnections)
	body := bytes.Repeat([]byte("x"), 256<<10)
	upload := func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addrs(b)[0]+"/up", bytes.NewReader(body))
		res, err := tr.RoundTrip(req)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	for range 5 {
		upload() // warm: the connection, the pools
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 40
	for range n {
		upload()
	}
	runtime.ReadMemStats(&after)
	perUpload := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per upload (client transport and test server together)", perUpload)
	require.Less(t, perUpload, uint64(24<<10))
}
