//go:build !unix

package lb

import (
	"net"
	"syscall"
)

// connAlive cannot probe without blocking here; a dead connection is then
// caught by the stale-connection retry in h1Transport.
func connAlive(net.Conn) bool { return true }

// readNoWait is unavailable here: every read arms cancellation and waits.
func readNoWait(syscall.RawConn, []byte) (int, bool, error) { return 0, false, nil }
