//go:build linux

package lb

import (
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
