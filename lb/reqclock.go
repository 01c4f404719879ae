package lb

import (
	"context"
	"time"
)

// reqClock runs a fast-loop request's time-outs (its route's timeout and
// its attempts' try_timeout) on the connection's context, instead of the
// contexts they otherwise derive (context.WithTimeout per request,
// WithCancelCause and a timer per attempt). Those cost about 6 µs of CPU
// per request proxy-bound, half as much again as the whole request
// without time-outs (bench/lb/RESULTS.md, "Time-outs"), and they kept the
// request from the fast loop's reuse of its storage: a config with
// time-outs (every real one; `vigil all`'s too) lost a third of its
// requests per second.
//
// A deadline is two fields, not a timer per request: one timer per
// connection, armed for the earliest deadline it has seen. It fires
// early, most times, for an earlier request's deadline, finds the running
// request's later and re-arms for that; so it is reset about once per
// try_timeout, not once per request. When a deadline passes, the clock
// records why (expired) and runs the abort the upstream wait registered
// (setAbort), as a cancelled context would; waits registered after that
// abort at once.
//
// Only requests the h1Transport's own path carries use it (proxy decides):
// everything that waits for such a request's upstream registers with
// h1ConnCtx.setAbort. The fields are guarded by the h1ConnCtx's mu.
type reqClock struct {
	timer   *time.Timer // nil until the connection's first deadline
	timerAt int64       // when timer fires (unix ns); 0: not armed
	routeAt int64       // the route's deadline; 0: none
	tryAt   int64       // the attempt's deadline; 0: none
	// expired is why the running request's wait was aborted:
	// context.DeadlineExceeded (its route's timeout) or errTryTimeout.
	expired error
}

// beginRequest starts a request's clock with its route's timeout (0:
// none) counted from start.
func (x *h1ConnCtx) beginRequest(start time.Time, timeout time.Duration) {
	x.mu.Lock()
	k := &x.clock
	k.expired, k.tryAt, k.routeAt = nil, 0, 0
	if timeout > 0 {
		k.routeAt = start.Add(timeout).UnixNano()
		x.armClock(k.routeAt, start)
	}
	x.mu.Unlock()
}

// endRequest stops the request's clock: a timer that fires later finds
// no deadline and stays unarmed until the next one.
func (x *h1ConnCtx) endRequest() {
	x.mu.Lock()
	x.clock = reqClock{timer: x.clock.timer, timerAt: x.clock.timerAt}
	x.mu.Unlock()
}

// beginTry starts an attempt's try_timeout, counted from start. A
// previous attempt's expiry is forgotten; the route's is not.
func (x *h1ConnCtx) beginTry(start time.Time, timeout time.Duration) {
	x.mu.Lock()
	k := &x.clock
	if k.expired == errTryTimeout {
		k.expired = nil
	}
	k.tryAt = start.Add(timeout).UnixNano()
	x.armClock(k.tryAt, start)
	x.mu.Unlock()
}

// endTry ends the attempt's try_timeout (its answer's head arrived, or
// it failed) and reports whether it expired.
func (x *h1ConnCtx) endTry() (expired bool) {
	x.mu.Lock()
	k := &x.clock
	k.tryAt = 0
	expired = k.expired == errTryTimeout
	x.mu.Unlock()
	return expired
}

// dialContext is the context a dial for the running request takes: the
// connection's, which the clock ends too, through the abort slot (the
// expiry is recorded before the dial sees its context end, so attempt
// reports a try_timeout as such). The returned stop must be called once
// the dial is done.
func (x *h1ConnCtx) dialContext() (ctx context.Context, stop func()) {
	x.mu.Lock()
	at := earliest(x.clock.routeAt, x.clock.tryAt)
	x.mu.Unlock()
	if at == 0 {
		return x, noCancel
	}
	ctx, cancel := context.WithCancel(x)
	if !x.setAbort(cancel) {
		// Another wait's abort holds the slot (none should): let the
		// deadline itself end the dial.
		cancel()
		return context.WithDeadline(x, time.Unix(0, at))
	}
	return ctx, func() { x.clearAbort(); cancel() }
}

// routeExpired reports whether the request's route timeout passed, as
// the derived context's Err would have.
func (x *h1ConnCtx) routeExpired() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.clock.expired == context.DeadlineExceeded
}

// expiredCause is why the clock aborted the running request's wait
// (errTryTimeout, context.DeadlineExceeded for the route's timeout), or
// nil.
func (x *h1ConnCtx) expiredCause() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.clock.expired
}

// armClock makes the timer fire by at (unix ns). One armed for earlier
// already does: it re-arms itself when it fires (clockFired). x.mu held.
func (x *h1ConnCtx) armClock(at int64, now time.Time) {
	k := &x.clock
	if k.timerAt != 0 && k.timerAt <= at {
		return
	}
	d := time.Duration(at - now.UnixNano())
	if k.timer == nil {
		k.timer = time.AfterFunc(d, x.clockFired)
	} else {
		k.timer.Reset(d)
	}
	k.timerAt = at
}

// clockFired runs on the timer: it aborts the running request's wait
// when a deadline passed, and re-arms for the one still ahead, if any.
func (x *h1ConnCtx) clockFired() {
	x.mu.Lock()
	k := &x.clock
	k.timerAt = 0
	now := time.Now()
	ns := now.UnixNano()
	var why error
	switch {
	case k.routeAt != 0 && k.routeAt <= ns:
		why, k.routeAt, k.tryAt = context.DeadlineExceeded, 0, 0
	case k.tryAt != 0 && k.tryAt <= ns:
		why, k.tryAt = errTryTimeout, 0
	}
	if next := earliest(k.routeAt, k.tryAt); next != 0 {
		x.armClock(next, now)
	}
	if why == nil {
		x.mu.Unlock()
		return
	}
	k.expired = why
	fn, hook := x.takeAbort(), x.onExpire
	x.mu.Unlock()
	if fn != nil {
		fn()
	}
	if hook != nil {
		hook()
	}
}

// stopClock stops the timer for good: the connection ended.
func (x *h1ConnCtx) stopClock() {
	x.mu.Lock()
	if x.clock.timer != nil {
		x.clock.timer.Stop()
	}
	x.clock = reqClock{}
	x.mu.Unlock()
}

// earliest is the earlier of two deadlines, 0 meaning none.
func earliest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
