package lb

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// accessLines are the access-log lines written so far, decoded.
func (l *lockedBuffer) accessLines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["log"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

func startLoggedLB(t *testing.T, cfg *Config) (*Server, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(buf, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, buf
}

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestAccessLogLines: both engines write one line per request with the
// same fields, the trace id taken from traceparent, and their own extra
// field (bytes for HTTP, the gRPC code for calls).
func TestAccessLogLines(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		b := newBackend(t, "b", nil)
		srv, buf := startLoggedLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Name: "web"}))
		code, _ := get(t, newClient(t), "http://"+srv.Addr()+"/some/path", map[string]string{"Traceparent": testTraceparent, "X-Request-Id": "req-http-1"})
		require.Equal(t, http.StatusOK, code)
		var lines []map[string]any
		require.Eventually(t, func() bool { lines = buf.accessLines(t); return len(lines) == 1 }, 5*time.Second, 10*time.Millisecond)
		l := lines[0]
		require.Equal(t, "req-http-1", l["request_id"])
		require.Equal(t, "GET", l["method"])
		require.Equal(t, "/some/path", l["path"])
		require.Equal(t, "HTTP/1.1", l["proto"])
		require.Equal(t, "web", l["route"])
		require.Equal(t, b.addr(), l["upstream"])
		require.EqualValues(t, 200, l["status"])
		require.Contains(t, l, "bytes")
		require.NotContains(t, l, "grpc_code")
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", l["trace_id"])
		require.Equal(t, "INFO", l["level"])
	})
	t.Run("grpc", func(t *testing.T) {
		g := newGRPCBackend(t, "g")
		srv, buf := startLoggedLB(t, grpcRouteConfig(PoolConfig{Upstreams: []string{g.addr}}, RouteConfig{Name: "calls"}, true))
		ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", testTraceparent, "x-request-id", "req-grpc-1")
		_, err := dialLB(t, srv.Addr()).UnaryCall(ctx, &testpb.SimpleRequest{})
		require.NoError(t, err)
		var lines []map[string]any
		require.Eventually(t, func() bool { lines = buf.accessLines(t); return len(lines) == 1 }, 5*time.Second, 10*time.Millisecond)
		l := lines[0]
		require.Equal(t, "req-grpc-1", l["request_id"])
		require.Equal(t, "POST", l["method"])
		require.Equal(t, "/grpc.testing.TestService/UnaryCall", l["path"])
		require.Equal(t, "HTTP/2.0", l["proto"])
		require.Equal(t, "calls", l["route"])
		require.Equal(t, g.addr, l["upstream"])
		require.Equal(t, "OK", l["grpc_code"])
		require.NotContains(t, l, "bytes")
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", l["trace_id"])
	})
}

// TestTraceIDOf: only a well-formed W3C traceparent gives a trace id for
// the access log.
func TestTraceIDOf(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for tp, want := range map[string]string{
		testTraceparent: id,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future": id, // a later version may add fields
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x":      "", // version 00 may not
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        "", // version ff is invalid
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":        "", // uppercase
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":        "", // all-zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":        "", // all-zero parent id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g":        "",
		"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01":        "",
		"00-<script>alert(1)</script>00000000-00f067aa0ba902b7-01":       "",
		"": "",
	} {
		require.Equal(t, want, traceIDOf(tp), tp)
	}
}

// A client's long path or host does not make a long log line.
func TestAccessLogCapsClientFields(t *testing.T) {
	b := newBackend(t, "b", nil)
	srv, buf := startLoggedLB(t, oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{}))
	long := "/" + strings.Repeat("a", 20000)
	code, _ := get(t, newClient(t), "http://"+srv.Addr()+long, nil)
	require.Equal(t, http.StatusOK, code)
	var lines []map[string]any
	require.Eventually(t, func() bool { lines = buf.accessLines(t); return len(lines) == 1 }, 5*time.Second, 10*time.Millisecond)
	path := lines[0]["path"].(string)
	require.Equal(t, long[:logFieldMax]+"…(cut)", path)
}
