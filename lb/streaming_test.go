package lb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// echoWebSocket accepts a WebSocket and sends each message back with
// prefix before it, until the connection ends.
func echoWebSocket(w http.ResponseWriter, r *http.Request, prefix string) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	ctx := r.Context()
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if err := conn.Write(ctx, typ, append([]byte(prefix), msg...)); err != nil {
			return
		}
	}
}

func TestWebSocketPassesThroughIntact(t *testing.T) {
	b := newBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) { echoWebSocket(w, r, "echo:") })
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{TryTimeout: Duration(time.Second)}))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	conn, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)

	// Two seconds of traffic (past try_timeout), text and binary, small
	// and large frames, every echo checked.
	deadline := time.Now().Add(2 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		typ := websocket.MessageText
		msg := []byte(fmt.Sprintf("message %d", n))
		if n%10 == 0 {
			typ = websocket.MessageBinary
			msg = []byte(strings.Repeat(string(rune('a'+n%26)), 100_000))
		}
		require.NoError(t, conn.Write(ctx, typ, msg))
		gotTyp, got, err := conn.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, typ, gotTyp)
		require.Equal(t, append([]byte("echo:"), msg...), got)
		n++
	}
	require.Greater(t, n, 100)
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, "bye"))
}

// TestUpgradeLimits: only WebSocket is relayed as a switch, and only
// without a body; open WebSockets leave their pool's max_pending free;
// a tunnel whose upstream ended waits upgradeLinger for its client, not
// for ever.
func TestUpgradeLimits(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Sec-WebSocket-Key") == "" {
			fmt.Fprintf(w, "plain; upgrade %q", r.Header.Get("Upgrade"))
			return
		}
		echoWebSocket(w, r, "")
	}
	b := newBackend(t, "ws", echo)
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b), MaxPending: 2}, RouteConfig{}))
	raw := func(t *testing.T, req string) (net.Conn, *http.Response) {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		return c, res
	}

	t.Run("h2c upgrade goes on as a plain request", func(t *testing.T) {
		_, res := raw(t, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
		got, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, `plain; upgrade ""`, string(got))
	})
	t.Run("websocket upgrade with a body", func(t *testing.T) {
		_, res := raw(t, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 5\r\n\r\nhello")
		require.Equal(t, http.StatusBadRequest, res.StatusCode)
	})
	t.Run("open websockets leave max_pending free", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for range 3 { // one more than max_pending
			conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
			require.NoError(t, err)
			defer conn.CloseNow()
			require.NoError(t, conn.Write(ctx, websocket.MessageText, []byte("hi")))
			_, msg, err := conn.Read(ctx)
			require.NoError(t, err)
			require.Equal(t, "hi", string(msg))
		}
		code, _ := get(t, newClient(t), base+"/x", nil)
		require.Equal(t, http.StatusOK, code)
	})
	t.Run("a silent client is let go after the upstream's end", func(t *testing.T) {
		up := serveConns(t, func(c net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
			}
		})
		_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{}))
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		require.NoError(t, err)
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(upgradeLinger + 5*time.Second))
		all, err := io.ReadAll(c) // the 101, then the lb's half-close
		require.NoError(t, err)
		require.Contains(t, string(all), "101 Switching Protocols")
		// Silent after the upstream's end: closed upgradeLinger later
		// (a write then fails).
		time.Sleep(time.Until(start.Add(upgradeLinger + time.Second)))
		_, err = c.Write([]byte("x"))
		if err == nil {
			time.Sleep(100 * time.Millisecond)
			_, err = c.Write([]byte("x"))
		}
		require.Error(t, err, "the tunnel still holds the client")
	})
}

func TestSSEIsFlushedImmediately(t *testing.T) {
	next := make(chan struct{})
	b := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event-%d\n\n", i)
			w.(http.Flusher).Flush()
			// The next event is only produced after the client has read
			// this one, so a buffering proxy would deadlock the test.
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	res, err := newClient(t).Get(base + "/events")
	require.NoError(t, err)
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	for i := 0; i < 3; i++ {
		line, err := rd.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("data: event-%d\n", i), line)
		_, err = rd.ReadString('\n')
		require.NoError(t, err)
		next <- struct{}{}
	}
}

func TestLargeUploadIsStreamed(t *testing.T) {
	firstBytes := make(chan struct{})
	b := newBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		buf := make([]byte, 64<<10)
		n, err := io.ReadFull(r.Body, buf)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		h.Write(buf[:n])
		close(firstBytes) // the proxy passed bytes on before the client finished
		rest, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", int64(n)+rest, h.Sum(nil))
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{MaxBodyBytes: 1 << 30}))

	const total = 64 << 20
	pr, pw := io.Pipe()
	want := sha256.New()
	go func() {
		chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
		pw.Write(chunk)
		want.Write(chunk)
		// Hold the rest back until the upstream has seen the start: a
		// proxy that buffers the whole body would never get here.
		select {
		case <-firstBytes:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(fmt.Errorf("upstream saw nothing while the upload was open"))
			return
		}
		for sent := len(chunk); sent < total; sent += len(chunk) {
			pw.Write(chunk)
			want.Write(chunk)
		}
		pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPut, base+"/upload", pr)
	require.NoError(t, err)
	res, err := newClient(t).Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.Equal(t, fmt.Sprintf("%d %x", total, want.Sum(nil)), string(body))
}

func TestRequestSizeLimit(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return
		}
		fmt.Fprint(w, n)
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{MaxBodyBytes: 1000}))
	c := newClient(t)
	cases := []struct {
		name    string
		body    io.Reader
		length  int64
		want    int
		reached bool
	}{
		{"within limit", strings.NewReader(strings.Repeat("x", 1000)), 1000, http.StatusOK, true},
		{"declared too large", strings.NewReader(strings.Repeat("x", 1001)), 1001, http.StatusRequestEntityTooLarge, false},
		{"chunked too large", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), -1, http.StatusRequestEntityTooLarge, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := b.hits.Load()
			req, err := http.NewRequest(http.MethodPost, base+"/", tc.body)
			require.NoError(t, err)
			req.ContentLength = tc.length
			res, err := c.Do(req)
			require.NoError(t, err)
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			require.Equal(t, tc.want, res.StatusCode)
			if !tc.reached {
				require.Equal(t, before, b.hits.Load(), "refused before reaching the upstream")
			}
		})
	}
}

func TestRateLimitPerAPIKey(t *testing.T) {
	b := newBackend(t, "b", nil)
	rl := &RateLimitConfig{Key: "header:X-Api-Key", Rate: 0.001, Burst: 3}
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{RateLimit: rl}))
	c := newClient(t)
	for i := 0; i < 3; i++ {
		code, _ := get(t, c, base+"/", map[string]string{"X-Api-Key": "alice"})
		require.Equal(t, http.StatusOK, code)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Header.Set("X-Api-Key", "alice")
	res, err := c.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	// Another key has its own bucket; no key falls back to the IP.
	code, _ := get(t, c, base+"/", map[string]string{"X-Api-Key": "bob"})
	require.Equal(t, http.StatusOK, code)
	for i := 0; i < 3; i++ {
		code, _ := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
	}
	code, _ = get(t, c, base+"/", nil)
	require.Equal(t, http.StatusTooManyRequests, code)
}

func TestTokenBucketRefills(t *testing.T) {
	rl := newRateLimiter(RateLimitConfig{Key: "ip", Rate: 10, Burst: 2})
	now := time.Unix(1000, 0)
	ok1, _ := rl.allow("k", now)
	ok2, _ := rl.allow("k", now)
	ok3, wait := rl.allow("k", now)
	require.True(t, ok1)
	require.True(t, ok2)
	require.False(t, ok3)
	require.Equal(t, 100*time.Millisecond, wait)
	ok4, _ := rl.allow("k", now.Add(100*time.Millisecond))
	require.True(t, ok4)
	rl.sweep(now.Add(time.Hour))
	for i := range rl.shards {
		require.Empty(t, rl.shards[i].buckets)
	}
}

// An answer the upstream sent without a Content-Type reaches the client
// without one, on the fast loop and on net/http's path alike: a proxy
// passes the answer on, it does not guess a type for it (both
// ResponseWriters would sniff one from the body).
func TestAnswerWithoutContentTypeGetsNone(t *testing.T) {
	const page = "<html><body>no type given</body></html>"
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // net/http: send none, sniff none
		io.WriteString(w, page)
	})
	srv, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	c := newClient(t)
	for _, path := range []string{"fast loop", "net/http"} {
		req, err := http.NewRequest(http.MethodGet, base+"/", nil)
		require.NoError(t, err)
		if path == "net/http" {
			// A head over the fast loop's buffer is handed to net/http.
			req.Header.Set("X-Pad", strings.Repeat("p", 9000))
		}
		res, err := c.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		require.Equal(t, page, string(body), path)
		require.NotContains(t, res.Header, "Content-Type", path)
	}
	require.NotZero(t, srv.listeners[0].fast.handedOff.Load(), "the padded request took net/http's path")
}

func TestRequestIDAndTraceparent(t *testing.T) {
	type seen struct{ id, tp, xff string }
	got := make(chan seen, 2)
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("X-Request-Id"), r.Header.Get("Traceparent"), r.Header.Get("X-Forwarded-For")}
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	c := newClient(t)

	res, err := c.Get(base + "/")
	require.NoError(t, err)
	res.Body.Close()
	s := <-got
	require.Len(t, s.id, 32)
	require.Equal(t, s.id, res.Header.Get("X-Request-Id"), "client gets the generated id")
	require.Empty(t, s.tp, "no trace context is invented; it is passed on when present")
	require.Equal(t, "127.0.0.1", s.xff)

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	req.Header.Set("Traceparent", tp)
	res, err = c.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	s = <-got
	require.Equal(t, "abc-123", s.id)
	require.Equal(t, tp, s.tp)
	require.Equal(t, "abc-123", res.Header.Get("X-Request-Id"))
}

// TestRateLimitCountsIPv6ByPrefix: an IPv6 client is counted by its /64,
// which it may pick any address from; IPv4 clients (mapped ones too) by
// their address.
func TestRateLimitCountsIPv6ByPrefix(t *testing.T) {
	rl := newRateLimiter(RateLimitConfig{Key: "ip", Rate: 0.001, Burst: 1})
	now := time.Now()
	allowed := func(remote string) bool {
		ok, _ := rl.allow(rl.clientKey(&http.Request{RemoteAddr: remote, Header: http.Header{}}, ""), now)
		return ok
	}
	require.True(t, allowed("[2001:db8::1]:1000"))
	require.False(t, allowed("[2001:db8::2]:1000"), "another address of the same /64")
	require.False(t, allowed("[2001:db8:0:0:ffff:ffff:ffff:ffff]:1000"), "another address of the same /64")
	require.True(t, allowed("[2001:db8:0:1::1]:1000"), "another /64")
	require.True(t, allowed("192.0.2.1:1000"))
	require.True(t, allowed("192.0.2.2:1000"), "IPv4 clients are counted by address")
	require.False(t, allowed("[::ffff:192.0.2.2]:1000"), "an IPv4-mapped address is that IPv4 client")
}

// TestUpgradeTunnelPassesHalfClose: a client that ends its side of a
// WebSocket tunnel (FIN) has the upstream see its EOF, and still gets
// what the upstream sends after it.
func TestUpgradeTunnelPassesHalfClose(t *testing.T) {
	up := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") == "" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		got, _ := io.ReadAll(br) // to the client's EOF
		io.WriteString(c, "after-eof:"+string(got))
	})
	_, base := startLB(t, oneRoute(PoolConfig{Upstreams: []string{up}}, RouteConfig{}))
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	_, err = io.WriteString(c, "last words")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(br)
	require.NoError(t, err, "the upstream never saw the client's EOF")
	require.Equal(t, "after-eof:last words", string(rest))
}
