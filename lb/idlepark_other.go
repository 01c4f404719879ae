//go:build !linux

package lb

// idleParker is Linux's (epoll); elsewhere idle connections keep their
// goroutine.
type idleParker struct{}

func idleParkerOf() *idleParker { return nil }

func (p *idleParker) accepts(*h1ServerConn) bool { return false }
func (p *idleParker) add(*h1ServerConn) bool     { return false }
func (p *idleParker) remove(*h1ServerConn)       {}
