package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testLogWriter shows log lines in the test's output.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// TestStandaloneLB runs `vigil lb` on a config file in front of a real HTTP backend and
// checks it proxies, serves its metrics, and stops when asked.
func TestStandaloneLB(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "backend:"+r.URL.Path)
	}))
	defer backend.Close()

	listen, metricsAddr := freePort(t), freePort(t)
	path := filepath.Join(t.TempDir(), "lb.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
listeners:
  - name: public
    address: %q
routes:
  - name: all
    match: {path_prefix: /}
    pool: web
pools:
  - name: web
    upstreams: [%q]
`, listen, backend.Listener.Addr().String())), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runLB(ctx, path, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)), metricsAddr) }()

	var body string
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			t.Fatalf("lb stopped: %v", err)
		default:
		}
		resp, err := quick.Get("http://" + listen + "/hello")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "backend:/hello", body)

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(b), "lb_requests_total")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("lb did not stop")
	}
}

func TestStandaloneLBRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.yaml")
	require.NoError(t, os.WriteFile(path, []byte("routes:\n  - name: x\n    pool: nope\n"), 0o600))
	err := runLB(context.Background(), path, slog.New(slog.DiscardHandler), "")
	require.Error(t, err)
}

// SIGHUP outside WatchConfig's watch (before the start, during the
// drain) does not end `vigil lb`: Go's default for it is to exit, which
// cut the drain's requests and lost the buffered log lines. Without
// keepSIGHUP this test's own process dies of the signal.
func TestKeepSIGHUP(t *testing.T) {
	keepSIGHUP()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	time.Sleep(200 * time.Millisecond) // the signal's default action would have run by now
}
