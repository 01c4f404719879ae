//go:build !linux

package lb

import "net"

// answerPoller is Linux's (epoll); elsewhere answers are awaited in Go's
// poller alone.
type answerPoller struct{}

func answerPollerOf() *answerPoller { return nil }

func (p *answerPoller) watch(net.Conn) *answerWait { return nil }

type answerWait struct{}

func (w *answerWait) forget()     {}
func (w *answerWait) wait()       {}
func (w *answerWait) wake()       {}
func (w *answerWait) forgetConn() {}
