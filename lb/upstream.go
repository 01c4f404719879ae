package lb

import (
	"math"
	"net/http"
	"sync/atomic"
	"time"
)

// Upstream is one backend address of a pool with the live state the
// pickers and health checks share. All fields are safe for concurrent use;
// an Upstream survives a reload when its pool and address stay the same, so
// ejections and latency estimates are not forgotten.
type Upstream struct {
	Addr string

	inflight atomic.Int64
	// ewmaNanos is the smoothed response-header latency, as float64 bits;
	// ewmaAt is when it was last updated (unix nanos).
	ewmaNanos atomic.Uint64
	ewmaAt    atomic.Int64
	// healthy is the verdict of the active health check (true without one).
	healthy atomic.Bool
	// checked: an active check has given it a verdict. Until then the
	// first check's result stands alone, without the thresholds (record):
	// an upstream added dead is not sent traffic for their whole length.
	checked atomic.Bool
	// ejectedUntil is the unix-nano end of a passive ejection, 0 if none.
	ejectedUntil        atomic.Int64
	consecutiveFailures atomic.Int32
	ejections           atomic.Int32

	metrics *upstreamMetrics
}

func newUpstream(addr string) *Upstream {
	u := &Upstream{Addr: addr}
	u.healthy.Store(true)
	return u
}

// Available reports whether the upstream should receive new requests.
func (u *Upstream) Available(now int64) bool {
	return u.healthy.Load() && u.ejectedUntil.Load() <= now
}

// Inflight is the number of requests the proxy has outstanding to it.
func (u *Upstream) Inflight() int64 { return u.inflight.Load() }

// EWMA is the smoothed latency to response headers.
func (u *Upstream) EWMA() time.Duration {
	return time.Duration(math.Float64frombits(u.ewmaNanos.Load()))
}

// decayedEWMA is the EWMA faded towards zero by the time since its last
// sample. A slow upstream that p2c stopped picking gets no new samples, so
// without this its old latency would keep it out forever even after it
// recovered; fading makes it win a draw again after a few decay periods,
// and the sample it then earns says whether it is fast now.
func (u *Upstream) decayedEWMA(now int64, decay time.Duration) float64 {
	e := math.Float64frombits(u.ewmaNanos.Load())
	if e == 0 || decay <= 0 {
		return e
	}
	idle := now - u.ewmaAt.Load()
	if idle <= 0 {
		return e
	}
	return e * math.Exp(-float64(idle)/float64(decay))
}

// ewmaWeight is the share of a new sample; 0.3 follows a latency change
// within a handful of requests without flapping on one outlier.
const ewmaWeight = 0.3

func (u *Upstream) observeLatency(d time.Duration) {
	u.observeLatencyAt(d, time.Now().UnixNano())
}

// observeLatencyAt is observeLatency for a sample taken at now (unix
// nanos), for a caller that has just read the clock anyway.
func (u *Upstream) observeLatencyAt(d time.Duration, now int64) {
	sample := float64(d)
	for {
		old := u.ewmaNanos.Load()
		prev := math.Float64frombits(old)
		next := sample
		if prev != 0 {
			next = prev + ewmaWeight*(sample-prev)
		}
		if u.ewmaNanos.CompareAndSwap(old, math.Float64bits(next)) {
			u.ewmaAt.Store(now)
			return
		}
	}
}

// outcome classifies one attempt for passive outlier detection.
type outcome int

const (
	outcomeSuccess outcome = iota
	// outcomeGatewayFailure: connect error, reset, try time-out, 502/503/504.
	outcomeGatewayFailure
)

// failureStatus reports whether an upstream's status code means the
// upstream (not the request) is at fault.
func failureStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}
