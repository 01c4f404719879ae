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
// request bodies unread in the lb: here seven bodies wait for an upstream
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
	var ids []uint32                  // enough streams' bodies to pass the connection's window
	for i := range h2ServeConnWindow/perStream + 1 {
		ids = append(ids, uint32(2*i+1))
	}
	for _, id := range ids {
		c.headers(t, id, false, ":method", "POST", ":scheme", "https", ":path", "/", ":authority", "lb",
			"content-length", "1000000")
	}
	go func() {
		for sent := 0; sent < perStream; sent += len(chunk) {
			for _, id := range ids {
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

// Request bytes a relayed call holds while its upstream is dialled are
// credited back to the client when the call fails: they used to be
// dropped uncredited, and a client connection whose calls failed so
// (an upstream down) ran out of window and hung, whatever came after.
func TestH2RelayCreditsBodiesOfCallsThatFailBeforeSending(t *testing.T) {
	addr := blackHole(t) // dials hang until dial_timeout
	srv, _ := startLB(t, &Config{
		Listeners: []ListenerConfig{{Name: "grpc", Address: "127.0.0.1:0", H2C: true, NativeGRPC: true}},
		Routes:    []RouteConfig{{Name: "grpc", Pool: "g", Match: MatchConfig{GRPC: true}, Retries: ptr(0)}},
		Pools:     []PoolConfig{{Name: "g", Protocol: "h2c", Upstreams: []string{addr}, DialTimeout: Duration(300 * time.Millisecond)}},
	})
	c := dialRawH2(t, srv.Addr())
	const calls = 8
	chunk := make([]byte, 16<<10)
	for i := range calls {
		id := uint32(2*i + 1)
		c.headers(t, id, false, ":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/Call", ":authority", "lb",
			"content-type", "application/grpc", "te", "trailers")
		for sent := 0; sent < 1<<20; sent += len(chunk) { // 1 MiB, the stream's window
			require.NoError(t, c.fr.WriteData(id, sent+len(chunk) == 1<<20, chunk))
		}
	}
	// credited counts past the WINDOW_UPDATE that opens the connection's
	// window to h2ConnWindow at its start.
	ended, credited := 0, -(h2ConnWindow - 65535)
	deadline := time.Now().Add(5 * time.Second)
	for ended < calls || credited < (calls-4)<<20 {
		require.True(t, time.Now().Before(deadline), "%d calls ended, %d bytes credited", ended, credited)
		f, err := c.fr.ReadFrame()
		require.NoError(t, err, "%d calls ended, %d bytes credited", ended, credited)
		switch f := f.(type) {
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				credited += int(f.Increment)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				ended++
			}
		case *http2.RSTStreamFrame:
			ended++
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}
