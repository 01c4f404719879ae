//go:build linux

package lb

import (
	"bytes"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// An HTTP/2 client connection may have at most h2ServeConnWindow of its
// request bodies unread in the lb: here two bodies wait for an upstream
// that cannot be reached (its dial hangs), and a client that sends more
// than the window without waiting for credit breaks flow control
// (GOAWAY FLOW_CONTROL_ERROR), rather than making the lb hold it.
func TestH2ServeBoundsUnreadBodies(t *testing.T) {
	addr := blackHole(t)
	certFile, keyFile, roots := writeCert(t, t.TempDir(), 1)
	srv, _ := startLB(t, &Config{
		Listeners: []ListenerConfig{{Name: "tls", Address: "127.0.0.1:0", TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}},
		Routes:    []RouteConfig{{Name: "web", Pool: "web"}},
		Pools:     []PoolConfig{{Name: "web", Upstreams: []string{addr}, DialTimeout: Duration(5 * time.Second)}},
	})
	c := dialRawH2TLS(t, srv.Addr(), roots)
	chunk := make([]byte, h2MaxFrame)
	const perStream = 40 * h2MaxFrame // 640 KiB, within the stream window
	for _, id := range []uint32{1, 3} {
		c.headers(t, id, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "lb",
			"content-length", "1000000")
	}
	go func() {
		for sent := 0; sent < perStream; sent += len(chunk) {
			for _, id := range []uint32{1, 3} {
				if c.fr.WriteData(id, false, chunk) != nil {
					return
				}
			}
		}
	}()
	f := c.until(t, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	require.Equal(t, http2.ErrCodeFlowControl, f.ErrCode)
}

// A handler whose answer waits for the client's credit waits idle: it
// and the connection's writer used to wake each other for as long as the
// client withheld credit, a core per such stream.
func TestH2ServeWaitsForCreditIdle(t *testing.T) {
	b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("z"), 300000))
	})
	srv, _, roots := startTLSLB(t, addrs(b), RouteConfig{})
	c := dialRawH2TLS(t, srv.Addr(), roots, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	c.headers(t, 1, true, ":method", "GET", ":scheme", "https", ":path", "/big", ":authority", "lb")
	for got := 0; got < 100; {
		f := c.until(t, func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamID == 1 })
		got += len(f.(*http2.DataFrame).Data())
	}
	time.Sleep(100 * time.Millisecond) // the handler is in its wait
	cpu0 := processCPU(t)
	time.Sleep(600 * time.Millisecond)
	used := processCPU(t) - cpu0
	require.Less(t, used, 200*time.Millisecond, "CPU used while the stream waited for credit")

	// Credit comes: the rest follows.
	require.NoError(t, c.fr.WriteWindowUpdate(0, 1<<20))
	require.NoError(t, c.fr.WriteWindowUpdate(1, 1<<20))
	got := 100
	for {
		f := c.until(t, func(f http2.Frame) bool { d, ok := f.(*http2.DataFrame); return ok && d.StreamID == 1 })
		d := f.(*http2.DataFrame)
		got += len(d.Data())
		if d.StreamEnded() {
			break
		}
	}
	require.Equal(t, 300000, got)
}

// processCPU is the test process's user and system CPU time so far.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
