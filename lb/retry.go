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

type budgetBucket struct {
	sec               atomic.Int64
	requests, retries atomic.Int64
}

func newRetryBudget(cfg RetryBudget) *retryBudget {
	b := &retryBudget{}
	b.cfg.Store(&cfg)
	return b
}

func (b *retryBudget) bucket(now int64) *budgetBucket {
	sec := now / int64(time.Second)
	bk := &b.buckets[sec%budgetWindow]
	if old := bk.sec.Load(); old != sec && bk.sec.CompareAndSwap(old, sec) {
		// First touch of this second: the slot held data 10 s old.
		bk.requests.Store(0)
		bk.retries.Store(0)
	}
	return bk
}

// request records one incoming request.
func (b *retryBudget) request() { b.requestAt(time.Now()) }

// requestAt records one incoming request that arrived at now.
func (b *retryBudget) requestAt(now time.Time) { b.bucket(now.UnixNano()).requests.Add(1) }

// tryRetry reports whether a retry fits the budget and, if so, books it.
func (b *retryBudget) tryRetry() bool {
	now := time.Now().UnixNano()
	sec := now / int64(time.Second)
	var reqs, retries int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if s := bk.sec.Load(); s > sec-budgetWindow && s <= sec {
			reqs += bk.requests.Load()
			retries += bk.retries.Load()
		}
	}
	cfg := b.cfg.Load()
	if float64(retries) >= cfg.ratio()*float64(reqs)+float64(cfg.minPerSecond()*budgetWindow) {
		return false
	}
	b.bucket(now).retries.Add(1)
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
