package lb

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawExchange writes raw bytes on a fresh connection and returns
// everything the proxy answers until it closes (or 3 s pass).
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte(raw))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
	out, err := io.ReadAll(c)
	var ne net.Error
	if err != nil && !(errorAs(err, &ne) && ne.Timeout()) {
		require.NoError(t, err)
	}
	return string(out)
}

func errorAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func TestMalformedRequestsAreRefused(t *testing.T) { forEachEngine(t, testMalformed) }

func testMalformed(t *testing.T, native bool) {
	var mu sync.Mutex
	var seen []string
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // an aborted body is no request the upstream could act on
		}
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" cl="+r.Header.Get("Content-Length")+" body="+string(body))
		mu.Unlock()
	})
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].MaxHeaderBytes = 8 << 10
	cfg.Listeners[0].NativeGRPC = native
	srv, _ := startLB(t, cfg)
	addr := srv.Addr()

	cases := []struct {
		name, raw, wantStatus string
		wantUpstream          []string // exactly what the upstream must see
	}{
		{
			name:       "CL.TE smuggling: Transfer-Encoding wins, pipelined request dropped with the connection",
			raw:        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			wantStatus: "HTTP/1.1 200 OK",
			// Re-framed: no Content-Length travels with the chunked body.
			wantUpstream: []string{"POST / cl= body="},
		},
		{
			name:         "TE.CL smuggling",
			raw:          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			wantStatus:   "HTTP/1.1 200 OK",
			wantUpstream: []string{"POST / cl= body=hello"},
		},
		{name: "two different Content-Lengths", raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", wantStatus: "HTTP/1.1 400"},
		{name: "obfuscated Transfer-Encoding", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", wantStatus: "HTTP/1.1 501"},
		{name: "chunked not last", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", wantStatus: "HTTP/1.1 501"},
		{name: "space in header name", raw: "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", wantStatus: "HTTP/1.1 400"},
		{name: "control character in header value", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", wantStatus: "HTTP/1.1 400"},
		{name: "missing Host", raw: "GET / HTTP/1.1\r\n\r\n", wantStatus: "HTTP/1.1 400"},
		{name: "bad chunk size", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", wantStatus: "HTTP/1.1 400"},
		{name: "oversize headers", raw: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", wantStatus: "HTTP/1.1 431"},
		{name: "garbage request line", raw: "GET\x01/ HTTP/1.1\r\nHost: x\r\n\r\n", wantStatus: "HTTP/1.1 400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			out := rawExchange(t, addr, tc.raw)
			require.True(t, strings.HasPrefix(out, tc.wantStatus), "got %q", out)
			require.Equal(t, 1, strings.Count(out, "HTTP/1.1 "), "exactly one response, then the connection closes: %q", out)
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, tc.wantUpstream, seen)
		})
	}

	// The proxy is still fine for everyone else.
	code, _ := get(t, newClient(t), "http://"+addr+"/ok", nil)
	require.Equal(t, http.StatusOK, code)
}

func TestSlowlorisDoesNotStarveOthers(t *testing.T) { forEachEngine(t, testSlowloris) }

func testSlowloris(t *testing.T, native bool) {
	b := newBackend(t, "b", nil)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{})
	cfg.Listeners[0].ReadHeaderTimeout = Duration(300 * time.Millisecond)
	cfg.Listeners[0].NativeGRPC = native
	srv, base := startLB(t, cfg)

	// 50 connections that dribble a header byte at a time and never finish;
	// on the native engine half of them dribble the HTTP/2 preface instead.
	const slow = 50
	closed := make(chan time.Duration, slow)
	for i := 0; i < slow; i++ {
		c, err := net.Dial("tcp", srv.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		start := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
		if native && i%2 == 1 {
			start = "PRI * HTTP/2"
		}
		_, err = c.Write([]byte(start))
		require.NoError(t, err)
		go func() {
			start := time.Now()
			rd := bufio.NewReader(c)
			for {
				c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := rd.ReadByte()
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					if _, werr := c.Write([]byte("a")); werr != nil {
						closed <- time.Since(start)
						return
					}
					continue
				}
				// The proxy answered (408) or closed: either way it let go.
				closed <- time.Since(start)
				return
			}
		}()
	}
	// Meanwhile normal clients are served promptly.
	c := newClient(t)
	for i := 0; i < 50; i++ {
		start := time.Now()
		code, _ := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
		require.Less(t, time.Since(start), time.Second)
	}
	for i := 0; i < slow; i++ {
		select {
		case d := <-closed:
			require.Less(t, d, 3*time.Second, "slow connection held too long")
		case <-time.After(5 * time.Second):
			t.Fatal("slowloris connection was never closed")
		}
	}
}
