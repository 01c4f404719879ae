package lb

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// backend is a real HTTP upstream on loopback that answers with its name
// and counts what it served.
type backend struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

// addr is the backend's host:port.
func (b *backend) addr() string { return b.Listener.Addr().String() }

// testLogger logs to stderr only when LB_TEST_LOG is set, to keep the
// output readable.
func testLogger() *slog.Logger {
	if os.Getenv("LB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// oneRoute is a config with one loopback listener, one route to one pool.
func oneRoute(pool PoolConfig, ro RouteConfig) *Config {
	pool.Name = "p"
	ro.Pool = "p"
	if ro.Name == "" {
		ro.Name = "r"
	}
	return &Config{
		Listeners: []ListenerConfig{{Name: "test", Address: "127.0.0.1:0", H2C: true}},
		Routes:    []RouteConfig{ro},
		Pools:     []PoolConfig{pool},
	}
}

// startLB builds and starts a Server with a private registry and shuts it
// down at cleanup. It returns the server and its base URL.
func startLB(t *testing.T, cfg *Config) (*Server, string) {
	t.Helper()
	return startLBOn(t, cfg, prometheus.NewRegistry())
}

// startLBOn is startLB with the registry given.
func startLBOn(t *testing.T, cfg *Config, reg prometheus.Registerer) (*Server, string) {
	t.Helper()
	srv, err := New(cfg, testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, "http://" + srv.Addr()
}

// newClient is a keep-alive HTTP/1.1 client.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get does a GET and returns status and body.
func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

func addrs(bs ...*backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.addr()
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// serveConns listens on a loopback port, closed at the test's end, and
// runs handle on a goroutine of its own for each connection, closing the
// connection once handle returns. It returns the address.
func serveConns(tb testing.TB, handle func(c net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// keepAlive is a client connection that sends GETs and reads answers,
// all on the one connection.
type keepAlive struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	return &keepAlive{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// get sends GET path and returns the answer's body, or an error.
func (k *keepAlive) get(path string) (string, error) {
	_, body, err := k.do(path)
	return body, err
}

// do sends GET path and returns the answer's status and body, or an
// error when the connection broke.
func (k *keepAlive) do(path string) (int, string, error) {
	if _, err := io.WriteString(k.nc, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, "", err
	}
	return k.readAnswer()
}

// readAnswer reads an answer to a GET or POST.
func (k *keepAlive) readAnswer() (int, string, error) {
	k.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// connCount is how many connections the fast loop holds.
func connCount(hs *h1Server) int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return len(hs.conns)
}

// fixedAnswerUpstream answers every request head with the same 24-byte
// answer, allocating nothing per request: what the lb allocates is then
// all that a test or benchmark counts.
func fixedAnswerUpstream(tb testing.TB) string {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 24\r\nContent-Type: text/plain\r\nDate: Fri, 04 Dec 2026 00:00:00 GMT\r\n\r\n0123456789abcdef01234567")
	return serveConns(tb, func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
				c.Write(answer)
			}
		}
	})
}
