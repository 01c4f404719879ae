package lb

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Picker chooses the upstream for one attempt. tried holds upstreams that
// already failed this request; a picker avoids them while others remain.
// Pick returns nil when no upstream can be used.
type Picker interface {
	Pick(r *http.Request, ups []*Upstream, tried []*Upstream) *Upstream
}

// newPicker builds the policy named in a PoolConfig.
func newPicker(cfg PoolConfig, ups []*Upstream) (Picker, error) {
	switch cfg.Policy {
	case "round_robin":
		return &RoundRobin{}, nil
	case "least_requests":
		return &LeastRequests{}, nil
	case "p2c_ewma":
		return &P2CEWMA{}, nil
	case "consistent_hash":
		return newConsistentHash(cfg.HashHeader, ups), nil
	}
	return nil, fmt.Errorf("unknown policy %q", cfg.Policy)
}

// candidates returns the upstreams a picker may choose from: the available
// untried ones, or, when no upstream of the pool is available, tried or
// not, every untried one ("panic mode": trying a suspect upstream beats
// refusing the request). A retry after an available upstream failed
// goes to no upstream known to be down: it would cost that one's dial
// time-out, and the client gets the available one's answer instead.
func candidates(ups, tried []*Upstream, buf []*Upstream) []*Upstream {
	// The clock is read only for an upstream ejected at some time: most
	// never were, and time.Now costs about as much as the rest of this.
	var now int64
	out := buf[:0]
	available := false
	for _, u := range ups {
		if !u.healthy.Load() {
			continue
		}
		if e := u.ejectedUntil.Load(); e != 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			if e > now {
				continue
			}
		}
		available = true
		if len(tried) > 0 && slices.Contains(tried, u) {
			continue
		}
		out = append(out, u)
	}
	if len(out) > 0 || available {
		return out
	}
	for _, u := range ups {
		if !slices.Contains(tried, u) {
			out = append(out, u)
		}
	}
	return out
}

// canRetry reports whether a request that tried these upstreams has one
// left that a picker would choose (candidates).
func canRetry(ups, tried []*Upstream) bool {
	var buf [16]*Upstream
	return len(candidates(ups, tried, buf[:])) > 0
}

// RoundRobin cycles through the available upstreams.
type RoundRobin struct{ next atomic.Uint64 }

// Pick implements Picker.
func (p *RoundRobin) Pick(_ *http.Request, ups, tried []*Upstream) *Upstream {
	var buf [16]*Upstream
	c := candidates(ups, tried, buf[:])
	if len(c) == 0 {
		return nil
	}
	return c[(p.next.Add(1)-1)%uint64(len(c))]
}

// LeastRequests picks the upstream with the fewest requests in flight,
// breaking ties in turn so that an idle pool is still shared evenly.
type LeastRequests struct{ next atomic.Uint64 }

// Pick implements Picker.
func (p *LeastRequests) Pick(_ *http.Request, ups, tried []*Upstream) *Upstream {
	var buf [16]*Upstream
	c := candidates(ups, tried, buf[:])
	if len(c) == 0 {
		return nil
	}
	start := int(p.next.Add(1) % uint64(len(c)))
	best := c[start]
	bestN := best.Inflight()
	for i := 1; i < len(c); i++ {
		u := c[(start+i)%len(c)]
		if n := u.Inflight(); n < bestN {
			best, bestN = u, n
		}
	}
	return best
}

// P2CEWMA is "power of two choices": it draws two upstreams at random and
// keeps the one with the lower cost, EWMA latency times (in-flight + 1),
// which steers load away from slow upstreams without the herd behaviour of
// always picking the global minimum.
type P2CEWMA struct {
	// decay is how fast an unsampled upstream's latency fades (nanoseconds);
	// zero means defaultEWMADecay.
	decay atomic.Int64
}

// defaultEWMADecay lets an upstream that was shunned for being slow be
// tried again within roughly half a minute.
const defaultEWMADecay = 10 * time.Second

// Pick implements Picker.
func (p *P2CEWMA) Pick(_ *http.Request, ups, tried []*Upstream) *Upstream {
	var buf [16]*Upstream
	c := candidates(ups, tried, buf[:])
	switch len(c) {
	case 0:
		return nil
	case 1:
		return c[0]
	}
	i := rand.IntN(len(c))
	j := rand.IntN(len(c) - 1)
	if j >= i {
		j++
	}
	a, b := c[i], c[j]
	decay := time.Duration(p.decay.Load())
	if decay == 0 {
		decay = defaultEWMADecay
	}
	now := time.Now().UnixNano()
	if p2cCost(b, now, decay) < p2cCost(a, now, decay) {
		return b
	}
	return a
}

func p2cCost(u *Upstream, now int64, decay time.Duration) float64 {
	// An upstream without a sample yet costs nothing, so it is tried soon.
	return u.decayedEWMA(now, decay) * float64(u.Inflight()+1)
}

// ConsistentHash maps the value of a header onto a hash ring, so the same
// key keeps reaching the same upstream (matcher shards, sticky sessions)
// and a change of the pool moves only about 1/n of the keys. A request
// without the header, or whose owner is down, goes to the next upstream on
// the ring.
type ConsistentHash struct {
	header string
	ring   []ringPoint // sorted by hash
	rr     RoundRobin
}

type ringPoint struct {
	hash uint64
	up   *Upstream
}

// virtualNodes per upstream smooth the share of each upstream on the ring.
const virtualNodes = 160

func newConsistentHash(header string, ups []*Upstream) *ConsistentHash {
	ch := &ConsistentHash{header: http.CanonicalHeaderKey(header)}
	for _, u := range ups {
		for v := 0; v < virtualNodes; v++ {
			ch.ring = append(ch.ring, ringPoint{hash: hash64(u.Addr + "#" + strconv.Itoa(v)), up: u})
		}
	}
	slices.SortFunc(ch.ring, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return ch
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	// fnv's low bits mix poorly for similar keys; finish with a
	// splitmix64-style avalanche.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Pick implements Picker.
func (p *ConsistentHash) Pick(r *http.Request, ups, tried []*Upstream) *Upstream {
	key := r.Header.Get(p.header)
	if key == "" || len(p.ring) == 0 {
		return p.rr.Pick(r, ups, tried)
	}
	h := hash64(key)
	start, _ := slices.BinarySearchFunc(p.ring, h, func(pt ringPoint, h uint64) int {
		switch {
		case pt.hash < h:
			return -1
		case pt.hash > h:
			return 1
		}
		return 0
	})
	now := time.Now().UnixNano()
	var fallback *Upstream
	available := false // an upstream tried already is (see candidates)
	for i := 0; i < len(p.ring); i++ {
		u := p.ring[(start+i)%len(p.ring)].up
		if slices.Contains(tried, u) {
			available = available || u.Available(now)
			continue
		}
		if u.Available(now) {
			return u
		}
		if fallback == nil {
			fallback = u
		}
	}
	if available {
		return nil
	}
	return fallback
}

var (
	_ Picker = (*RoundRobin)(nil)
	_ Picker = (*LeastRequests)(nil)
	_ Picker = (*P2CEWMA)(nil)
	_ Picker = (*ConsistentHash)(nil)
)
