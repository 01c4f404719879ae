package lb

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The route's timeout on the fast loop's clock: a request past it gets a
// 504 at about the timeout, and the connection serves the next request,
// whose clock starts afresh.
func TestClockedRouteTimeoutKeepsConnection(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "fast")
	})
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Timeout: Duration(150 * time.Millisecond)}))
	k := dialKeepAlive(t, srv.Addr())
	for range 2 {
		start := time.Now()
		code, _, err := k.do("/slow")
		took := time.Since(start)
		require.NoError(t, err)
		require.Equal(t, http.StatusGatewayTimeout, code)
		require.GreaterOrEqual(t, took, 140*time.Millisecond)
		require.Less(t, took, 2*time.Second)
		for range 20 {
			code, body, err := k.do("/fast")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "fast", body)
		}
	}
}

// A deadline of an earlier request must not end a later one: the timer,
// armed for the first request's deadline, fires while the second runs
// (slower than the gap, well within its own timeout) and re-arms for it.
func TestClockedTimeoutFollowsTheRunningRequest(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slowish" {
			time.Sleep(250 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	})
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)},
		RouteConfig{Timeout: Duration(400 * time.Millisecond), TryTimeout: Duration(350 * time.Millisecond)}))
	k := dialKeepAlive(t, srv.Addr())
	code, _, err := k.do("/")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	// The first request's deadlines pass at 350 and 400 ms, while this one
	// (begun at 200 ms, answered at about 450) waits.
	time.Sleep(200 * time.Millisecond)
	code, body, err := k.do("/slowish")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "ok", body)
}

// try_timeout on the clock: the slow upstream's attempt is aborted at
// try_timeout (its server sees the connection go) and retried on the
// other, on one client connection throughout; with no retry left, the
// client gets a 504 and the connection still serves.
func TestClockedTryTimeoutRetries(t *testing.T) {
	var aborted atomic.Int64
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		aborted.Add(1)
	})
	fast := newBackend(t, "fast", nil)
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(slow, fast), Policy: "round_robin"},
		RouteConfig{Timeout: Duration(5 * time.Second), TryTimeout: Duration(80 * time.Millisecond), Retries: ptr(1)}))
	k := dialKeepAlive(t, srv.Addr())
	for range 6 {
		start := time.Now()
		code, body, err := k.do("/")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "fast", body)
		require.Less(t, time.Since(start), 2*time.Second)
	}
	require.Eventually(t, func() bool { return aborted.Load() >= 3 }, 2*time.Second, 10*time.Millisecond,
		"the slow upstream's tries are aborted")

	// One upstream, no retry: a 504 at try_timeout, and the next request
	// on the connection has its own full try_timeout again (nothing of the
	// expired one is left on the clock).
	both := newBackend(t, "both", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "fast")
	})
	srv2, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(both)},
		RouteConfig{TryTimeout: Duration(80 * time.Millisecond), Retries: ptr(0)}))
	k2 := dialKeepAlive(t, srv2.Addr())
	for range 2 {
		start := time.Now()
		code, _, err := k2.do("/slow")
		require.NoError(t, err)
		require.Equal(t, http.StatusGatewayTimeout, code)
		require.GreaterOrEqual(t, time.Since(start), 70*time.Millisecond)
		code, body, err := k2.do("/fast")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "fast", body)
	}
}

// The route's timeout covers the answer's body too: an upstream that
// stalls mid-body has its answer cut off at the timeout (the client's
// connection is aborted rather than a truncated body passed off as whole).
func TestClockedTimeoutEndsStalledBody(t *testing.T) {
	up := serveConns(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		time.Sleep(3 * time.Second)
	})
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{Timeout: Duration(200 * time.Millisecond)}))
	k := dialKeepAlive(t, srv.Addr())
	start := time.Now()
	_, _, err := k.do("/")
	require.Error(t, err, "a cut-off body is not passed off as whole")
	require.Less(t, time.Since(start), 2*time.Second)
}

// With time-outs, the fast loop's request allocates no more than without
// them: they run on the connection's clock, and the request's storage is
// reused as before (BenchmarkH1ServerProxy counts the allocations).
func TestClockedTimeoutsAllocateNothingMore(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	up := fixedAnswerUpstream(t)
	allocs := func(ro RouteConfig) float64 {
		cfg := oneRoute(PoolConfig{Upstreams: []string{up}}, ro)
		cfg.AccessLog = ptr(false)
		srv, _ := startLB(t, cfg)
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer c.Close()
		req := []byte("GET /a HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n")
		rd := bufio.NewReader(c)
		one := func() {
			c.Write(req)
			if err := readRawAnswer(rd); err != nil {
				t.Fatal(err)
			}
		}
		for range 100 {
			one()
		}
		return testing.AllocsPerRun(500, one)
	}
	without := allocs(RouteConfig{})
	with := allocs(RouteConfig{Timeout: Duration(time.Minute), TryTimeout: Duration(30 * time.Second), Retries: ptr(1)})
	t.Logf("allocations per request: %.1f without time-outs, %.1f with", without, with)
	require.LessOrEqual(t, with, without+0.5)
}

// A client that sends part of its body and stops is answered 504 when
// the route's timeout passes, whichever path carries its body: the
// transport's own (small), net/http's transport (large), net/http's
// server (chunked). Before, its request held an upstream connection for
// as long as the client kept its own open. The upstream never gets the
// body whole. (try_timeout, the upstream's time to answer, starts once
// the body is whole: TestTryTimeoutWaitsForTheWholeBody.)
func TestTimeoutEndsStalledClientBody(t *testing.T) {
	var whole atomic.Int64
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err == nil {
			whole.Add(1)
		}
	})
	for _, ro := range []RouteConfig{
		{Timeout: Duration(300 * time.Millisecond)},
		{Timeout: Duration(300 * time.Millisecond), TryTimeout: Duration(200 * time.Millisecond), Retries: ptr(0)},
	} {
		srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, ro))
		for name, head := range map[string]string{
			"small":   "Content-Length: 20\r\n\r\nfirst half",
			"large":   fmt.Sprintf("Content-Length: %d\r\n\r\nfirst half", nativeBodyMax+1000),
			"chunked": "Transfer-Encoding: chunked\r\n\r\na\r\nfirst half\r\n",
		} {
			t.Run(fmt.Sprintf("%s/try_timeout=%v", name, ro.TryTimeout), func(t *testing.T) {
				c, err := net.Dial("tcp", srv.Addr())
				require.NoError(t, err)
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				start := time.Now()
				_, err = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\n"+head)
				require.NoError(t, err)
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				require.NoError(t, err, "no answer while the body stalls")
				res.Body.Close()
				require.Equal(t, http.StatusGatewayTimeout, res.StatusCode)
				require.Less(t, time.Since(start), 1500*time.Millisecond)
			})
		}
	}
	require.Zero(t, whole.Load())
}

// body_read_timeout: a body that pauses longer than it between bytes
// ends its request with 408, on a route without a timeout, on every
// path; a slow body that keeps coming is served.
func TestBodyReadTimeout(t *testing.T) {
	var whole atomic.Int64
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			whole.Add(1)
		}
		if r.URL.Query().Has("think") {
			time.Sleep(900 * time.Millisecond) // past body_read_timeout
		}
		fmt.Fprintf(w, "%d", len(body))
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].BodyReadTimeout = Duration(600 * time.Millisecond)
	srv, _ := startLB(t, cfg)
	var c net.Conn
	var rd *bufio.Reader
	query := ""
	post := func(t *testing.T, head string, body ...string) (*http.Response, time.Duration) {
		var err error
		c, err = net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		rd = bufio.NewReader(c)
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = io.WriteString(c, "POST /up?"+query+" HTTP/1.1\r\nHost: x\r\n"+head)
		require.NoError(t, err)
		for _, p := range body {
			time.Sleep(50 * time.Millisecond)
			_, err = io.WriteString(c, p)
			require.NoError(t, err)
		}
		res, err := http.ReadResponse(rd, nil)
		require.NoError(t, err, "no answer while the body stalls")
		res.Body.Close()
		return res, time.Since(start)
	}
	for name, head := range map[string]string{
		"small":   "Content-Length: 20\r\n\r\nfirst half",
		"large":   fmt.Sprintf("Content-Length: %d\r\n\r\nfirst half", nativeBodyMax+1000),
		"chunked": "Transfer-Encoding: chunked\r\n\r\na\r\nfirst half\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			res, took := post(t, head)
			require.Equal(t, http.StatusRequestTimeout, res.StatusCode)
			require.Less(t, took, 2500*time.Millisecond)
		})
	}
	require.Zero(t, whole.Load())

	// Twenty pauses of 50 ms: a second in all, past the timeout, but
	// never 600 ms without a byte; the upstream then thinks longer than
	// the timeout, which is no pause of the body's. Bodies that net/http
	// reads (large, chunked) used to be cut off then: their read
	// deadline outlived the body, and net/http's read for the client's
	// close failed at it and cancelled the request.
	query = "think"
	for name, head := range map[string]string{
		"large":   fmt.Sprintf("Content-Length: %d\r\n\r\n%s", nativeBodyMax+1000, strings.Repeat("x", nativeBodyMax+980)),
		"chunked": "Transfer-Encoding: chunked\r\n\r\n14\r\n",
	} {
		t.Run(name+" whole", func(t *testing.T) {
			tail := strings.Split("01234567890123456789", "")
			if name == "chunked" {
				tail = append(tail, "\r\n0\r\n\r\n")
			}
			res, _ := post(t, head, tail...)
			require.Equal(t, http.StatusOK, res.StatusCode)
		})
	}
	require.Equal(t, int64(2), whole.Load())
	res, _ := post(t, "Content-Length: 20\r\n\r\n", strings.Split("01234567890123456789", "")...)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, int64(3), whole.Load())
	// The body's read deadline is gone with it: the connection waits
	// for its next request as long as idle_timeout says.
	time.Sleep(800 * time.Millisecond)
	_, err := io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	res, err = http.ReadResponse(rd, nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// A time-out that aborts an exchange is no stale pooled connection: the
// request is not sent again on the pool's next idle connection (the
// transport's retry of requests that met a connection the upstream had
// closed). It used to be, on every idle connection in turn, each abort
// looking like a dead connection: a slow upstream got as many copies of
// the request as the pool held.
func TestClockedTimeoutSendsTheRequestOnce(t *testing.T) {
	var slow atomic.Int64
	release := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, "fast")
	})
	defer close(release)
	for name, ro := range map[string]RouteConfig{
		"try_timeout": {TryTimeout: Duration(100 * time.Millisecond), Retries: ptr(0)},
		"timeout":     {Timeout: Duration(100 * time.Millisecond), Retries: ptr(0)},
	} {
		t.Run(name, func(t *testing.T) {
			slow.Store(0)
			srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, ro))
			// Eight idle connections in the pool: eight clients at once.
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k := dialKeepAlive(t, srv.Addr())
					for range 20 {
						code, _, err := k.do("/fast")
						if err != nil || code != http.StatusOK {
							t.Errorf("warm-up: %d %v", code, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			k := dialKeepAlive(t, srv.Addr())
			code, _, err := k.do("/slow")
			require.NoError(t, err)
			require.Equal(t, http.StatusGatewayTimeout, code)
			time.Sleep(200 * time.Millisecond)
			require.Equal(t, int64(1), slow.Load(), "copies of the request the upstream got")
		})
	}
}

// TestWholeBodyLeavesNoDeadline: once a body net/http reads is whole, its
// read deadline is gone: an upstream that answers later than
// body_read_timeout is waited for, and a time-out that passes then is a
// 504, not a connection cut. Both used to fail: the deadline set for the
// body's last read failed net/http's read that watches for the client's
// close, which cancelled the request.
func TestWholeBodyLeavesNoDeadline(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		time.Sleep(1200 * time.Millisecond)
		fmt.Fprintf(w, "got %d", n)
	})
	send := func(t *testing.T, cfg *Config, req string) *http.Response {
		srv, _ := startLB(t, cfg)
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		rd := bufio.NewReader(c)
		for {
			res, err := http.ReadResponse(rd, nil)
			require.NoError(t, err, "the connection was cut")
			if res.StatusCode != http.StatusContinue {
				return res
			}
		}
	}
	body := strings.Repeat("x", 100000)
	t.Run("expect upload", func(t *testing.T) {
		cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
		cfg.Listeners[0].BodyReadTimeout = Duration(400 * time.Millisecond)
		res := send(t, cfg, "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n"+body)
		got, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "got 100000", string(got))
	})
	t.Run("try_timeout after a chunked body", func(t *testing.T) {
		cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Retries: ptr(0), TryTimeout: Duration(600 * time.Millisecond)})
		res := send(t, cfg, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		require.Equal(t, http.StatusGatewayTimeout, res.StatusCode)
	})
}

// TestTryTimeoutWaitsForTheWholeBody: try_timeout is the upstream's time
// to answer, counted once the request body is whole. A client that
// uploads slowly is served, and one that stalls its body gets 408
// (body_read_timeout) without its upstream blamed; they used to get 504
// and have healthy upstreams ejected, on every path a body takes.
func TestTryTimeoutWaitsForTheWholeBody(t *testing.T) {
	var got atomic.Int64
	handler := func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err == nil {
			got.Add(1)
		}
		fmt.Fprintf(w, "%d", n)
	}
	b1, b2 := newBackend(t, "b1", handler), newBackend(t, "b2", handler)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b1, b2), Outlier: OutlierConfig{ConsecutiveFailures: 2}},
		RouteConfig{Retries: ptr(0), TryTimeout: Duration(300 * time.Millisecond)})
	cfg.Listeners[0].BodyReadTimeout = Duration(500 * time.Millisecond)
	srv, _ := startLB(t, cfg)
	send := func(t *testing.T, head string, parts ...string) int {
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\n"+head)
		require.NoError(t, err)
		for _, p := range parts {
			time.Sleep(150 * time.Millisecond)
			_, err = io.WriteString(c, p)
			require.NoError(t, err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	large := strings.Repeat("x", nativeBodyMax)
	for name, tc := range map[string]struct {
		head  string
		parts []string
	}{
		"small":   {"Content-Length: 10\r\n\r\n", []string{"hello", "world"}},
		"large":   {fmt.Sprintf("Content-Length: %d\r\n\r\n", 2*len(large)+10), []string{large, large, "0123456789"}},
		"chunked": {"Transfer-Encoding: chunked\r\n\r\n", []string{"5\r\nhello\r\n", "5\r\nworld\r\n", "0\r\n\r\n"}},
	} {
		t.Run(name, func(t *testing.T) {
			// 450-600 ms of upload, past try_timeout, in pauses shorter
			// than body_read_timeout: served.
			require.Equal(t, http.StatusOK, send(t, tc.head, tc.parts...))
			// The body stalls half-way: 408, four times, with two
			// upstreams each ejected after two failures.
			for range 4 {
				require.Equal(t, http.StatusRequestTimeout, send(t, tc.head, tc.parts[0]))
			}
			for _, u := range srv.state.Load().pools["p"].upstreams {
				require.Zero(t, u.consecutiveFailures.Load(), "%s blamed for its clients' bodies", u.Addr)
			}
		})
	}
	require.Equal(t, int64(3), got.Load())
}

// try_timeout still bounds the upstream while a body is being sent: an
// upstream that stops taking a large upload, or one that hangs after an
// HTTP/2 request's body (whose reader says EOF only on a read past its
// end, which the transport never makes), is answered 504. With the try
// started only at the body's end (c04e89a), both hung for good on a
// route without a timeout.
func TestTryTimeoutBoundsTheUpstreamDuringTheBody(t *testing.T) {
	hang := make(chan struct{})
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			io.Copy(io.Discard, r.Body)
		}
		<-hang // takes nothing more, answers nothing
	})
	t.Cleanup(func() { close(hang) }) // before the backend's Close waits for its handlers
	ro := RouteConfig{Retries: ptr(0), TryTimeout: Duration(400 * time.Millisecond)}
	t.Run("upstream stops taking the upload", func(t *testing.T) {
		srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, ro))
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		const size = 64 << 20 // past every socket buffer on the way
		go func() {
			io.WriteString(c, fmt.Sprintf("POST /still HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size))
			io.Copy(c, io.LimitReader(zeroReader{}, size))
		}()
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err, "no answer while the upstream takes nothing")
		require.Equal(t, http.StatusGatewayTimeout, res.StatusCode)
	})
	t.Run("HTTP/2 body, then the upstream hangs", func(t *testing.T) {
		_, base, roots := startTLSLBWith(t, addrs(b), ro, nil)
		pr, pw := io.Pipe()
		go func() {
			time.Sleep(100 * time.Millisecond) // the DATA comes after the handler starts
			pw.Write([]byte("hello"))
			pw.Close()
		}()
		req, err := http.NewRequest("POST", base+"/read", pr)
		require.NoError(t, err)
		req.ContentLength = 5
		start := time.Now()
		res, err := h2Client(t, roots).Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusGatewayTimeout, res.StatusCode)
		require.Less(t, time.Since(start), 3*time.Second)
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
