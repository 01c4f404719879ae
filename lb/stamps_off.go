//go:build !lbstamps || !linux

package lb

import "net"

// The latency breakdown of `-tags lbstamps` (stamps_on.go); in other
// builds these are empty and cost nothing.
const stampsOn = false

type connStamps struct{}
type ctxStamps struct{}
type upStamps struct{}

func stampedRead(int, []byte) (int, error)        { return 0, nil }
func (*connStamps) init(net.Conn)                 {}
func (*connStamps) waited()                       {}
func (*connStamps) headRead(*h1ConnCtx, bool)     {}
func (*connStamps) answered(*h1ConnCtx, bool)     {}
func (*upStamps) answerRead(net.Conn, *h1ConnCtx) {}
