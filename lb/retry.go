package lb

import (
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// retryBudget allows retries only while they stay a small share of the
// traffic (Finagle's and Linkerd's retry budget): over a sliding 10-second
// window, retries may not exceed ratio × requests + minPerSecond × 10. When
// a whole pool is sick this turns a retry storm into plain failures.
type retryBudget struct {
	cfg     atomic.Pointer[RetryBudget] // swapped on reload
	buckets [budgetWindow]budgetBucket
}

const budgetWindow = 10 // seconds

// budgetBucket counts one second's requests and retries. Each count is
// one word with its second (seconds<<32 | count), so that the first
// touch of a new second resets it in the same compare-and-swap that
// counts: a reset and a count of its own could lose counts of that
// second that came in between.
type budgetBucket struct {
	requests, retries atomic.Uint64
}

// countAt adds one to c for second sec.
func countAt(c *atomic.Uint64, sec uint32) {
	for {
		v := c.Load()
		next := uint64(sec)<<32 | 1
		switch s := uint32(v >> 32); {
		case s == sec:
			next = v + 1
		case s > sec:
			return // a later second's already: this one is past
		}
		if c.CompareAndSwap(v, next) {
			return
		}
	}
}

// uncountAt takes back one that countAt added to c for second sec.
func uncountAt(c *atomic.Uint64, sec uint32) {
	for {
		v := c.Load()
		if uint32(v>>32) != sec || uint32(v) == 0 {
			return // the slot went on to a later second: nothing to take back
		}
		if c.CompareAndSwap(v, v-1) {
			return
		}
	}
}

// countIn reads c's count when it is of a second in (sec-window, sec].
func countIn(c *atomic.Uint64, sec uint32) int64 {
	v := c.Load()
	if s := uint32(v >> 32); s > sec-budgetWindow && s <= sec {
		return int64(uint32(v))
	}
	return 0
}

// budgetEpoch starts the budget's clock. Its seconds are counted on the
// monotonic clock from here (times from time.Now carry it): a wall clock
// stepped back (NTP, a VM resumed) made every slot a "future" second,
// which let every retry through for the step's length. An hour back, so
// that the seconds do not start near 0, from which countIn subtracts.
var budgetEpoch = time.Now().Add(-time.Hour)

func nowSec(now time.Time) uint32 { return uint32(now.Sub(budgetEpoch) / time.Second) }

func newRetryBudget(cfg RetryBudget) *retryBudget {
	b := &retryBudget{}
	b.cfg.Store(&cfg)
	return b
}

// request records one incoming request.
func (b *retryBudget) request() { b.requestAt(time.Now()) }

// requestAt records one incoming request that arrived at now.
func (b *retryBudget) requestAt(now time.Time) {
	sec := nowSec(now)
	countAt(&b.buckets[sec%budgetWindow].requests, sec)
}

// tryRetry reports whether a retry fits the budget and, if so, books it.
// It books first and checks after, taking back a booking that does not
// fit: retries checked at the same instant each see the others', so
// together they never pass more than the budget allows (they may pass
// fewer, each counting the others' bookings that are then taken back).
func (b *retryBudget) tryRetry() bool {
	sec := nowSec(time.Now())
	slot := &b.buckets[sec%budgetWindow].retries
	countAt(slot, sec)
	var reqs, retries int64
	for i := range b.buckets {
		reqs += countIn(&b.buckets[i].requests, sec)
		retries += countIn(&b.buckets[i].retries, sec)
	}
	cfg := b.cfg.Load()
	if float64(retries-1) >= cfg.ratio()*float64(reqs)+float64(cfg.minPerSecond()*budgetWindow) {
		uncountAt(slot, sec)
		return false
	}
	return true
}

// idempotent reports whether a request may be sent twice: a safe or
// idempotent method (RFC 9110 9.2.2) or an explicit Idempotency-Key.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// isConnectError reports whether the attempt failed before any byte of
// the request could reach the upstream, which makes it safe to retry any
// request.
func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
