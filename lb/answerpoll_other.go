//go:build !linux

package lb

import "net"

// answerPoller is Linux's (epoll); elsewhere answers are awaited in Go's
// poller alone.
type answerPoller struct{}

func answerPollerOf() *answerPoller { return nil }

func answerPollerState() (present, loaded bool, switches int64) { return false, false, 0 }

func (p *answerPoller) watch(net.Conn) *answerWait { return nil }

type answerWait struct{}

func (w *answerWait) forget()     {}
func (w *answerWait) wait()       {}
func (w *answerWait) wake()       {}
func (w *answerWait) forgetConn() {}
func (w *answerWait) enter() bool { return false }
func (w *answerWait) leave()      {}
func (w *answerWait) sampleLoad() {}

// sampleExchanges: an upstream connection's exchanges between two calls
// of answerWait.sampleLoad.
const sampleExchanges = 64
