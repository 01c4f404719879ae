//go:build lbstamps && linux

package lb

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A read through stampedRead keeps the kernel's receive stamp: when the
// bytes arrived, not when they were read.
func TestStampedReadKeepsArrivalTime(t *testing.T) {
	addr := serveConns(t, func(c net.Conn) {
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			c.Write([]byte("hello"))
		}
	})
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	fd := stampFD(nc)
	require.GreaterOrEqual(t, fd, 0)
	// The kernel turns receive stamps on a little after the first socket
	// asks (a deferred static key): the first answers may come without.
	var waitedInSocket time.Duration
	for attempt := 0; attempt < 50 && stampOf(fd) == 0; attempt++ {
		_, err = nc.Write([]byte("!")) // stamps are on: now an answer
		require.NoError(t, err)
		time.Sleep(30 * time.Millisecond) // arrived, not yet read
		readAt := time.Now().UnixNano()
		var n int
		rawConnOf(nc).Read(func(f uintptr) bool {
			n, err = stampedRead(int(f), make([]byte, 16))
			return err == nil
		})
		require.NoError(t, err)
		require.Equal(t, 5, n)
		waitedInSocket = time.Duration(readAt - stampOf(fd))
	}
	require.NotZero(t, stampOf(fd), "no answer came with a receive stamp")
	require.Greater(t, waitedInSocket, 20*time.Millisecond)
	require.Less(t, waitedInSocket, 5*time.Second)

	var h stampHist
	h.add(int64(60 * time.Microsecond))
	h.add(int64(-time.Microsecond)) // clock skew: counted in the first bucket
	require.Equal(t, "n=2 p50=25 p90=75 p98=75 p99=75 p99.9=75", h.take())
	require.Equal(t, "n=0", h.take())
}
