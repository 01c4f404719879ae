//go:build !linux

package lb

import "net"

// idleParker is Linux's (epoll); elsewhere idle connections keep their
// goroutine.
type idleParker struct{}

func idleParkerOf() *idleParker { return nil }

func (p *idleParker) accepts(net.Conn) bool  { return false }
func (p *idleParker) add(*h1ServerConn) bool { return false }
func (p *idleParker) remove(*h1ServerConn)   {}
