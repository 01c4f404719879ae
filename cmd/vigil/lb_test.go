package main

import (
	"bufio"
	"context"
	"errors"
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
	hold := make(chan struct{})
	defer close(hold)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			// A WebSocket that stays open through the drain.
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			<-hold
			return
		}
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
drain_timeout: 1s
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

	// An open WebSocket outlives drain_timeout: the stop closes it and
	// is no failure.
	ws, err := net.Dial("tcp", listen)
	require.NoError(t, err)
	defer ws.Close()
	_, err = io.WriteString(ws, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(ws), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
		require.Less(t, time.Since(start), 5*time.Second, "drain_timeout was 1s")
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

func TestOnlyDeadline(t *testing.T) {
	dl := context.DeadlineExceeded
	require.True(t, onlyDeadline(dl))
	require.True(t, onlyDeadline(errors.Join(errors.Join(dl, nil), dl)))
	require.True(t, onlyDeadline(fmt.Errorf("drain: %w", dl)))
	require.False(t, onlyDeadline(nil))
	require.False(t, onlyDeadline(errors.Join(errors.New("listener: accept failed"), dl)), "a failure that came with the deadline")
	require.False(t, onlyDeadline(errors.New("listener: accept failed")))
}
