//go:build linux

package lb

import (
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// blackHole returns the address of a listener whose accept queue is full:
// Linux drops further SYNs, so a dial to it hangs until its caller gives
// up.
func blackHole(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second) // takes the queue's one place
	require.NoError(t, err)
	t.Cleanup(func() { filler.Close() })
	return addr
}

// A dial for a clocked request ends at its try_timeout, not at the pool's
// dial_timeout, and is reported as the time-out it is (504, not 502).
func TestClockedTryTimeoutEndsDial(t *testing.T) {
	addr := blackHole(t)
	srv, _ := startLB(t, oneRoute(PoolConfig{Upstreams: []string{addr}, DialTimeout: Duration(5 * time.Second)},
		RouteConfig{TryTimeout: Duration(200 * time.Millisecond), Retries: ptr(0)}))
	k := dialKeepAlive(t, srv.Addr())
	for range 2 {
		start := time.Now()
		code, _, err := k.do("/")
		require.NoError(t, err)
		require.Equal(t, http.StatusGatewayTimeout, code)
		require.Less(t, time.Since(start), 1500*time.Millisecond)
	}
}
