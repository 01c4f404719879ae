package lb

import (
	"hash/maphash"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per client (an API key header or the
// client IP). Buckets live in shards to keep lock contention low and are
// dropped once full and idle, so memory follows the active clients only.
type rateLimiter struct {
	cfg    RateLimitConfig
	header string // canonical header name, "" for ip
	seed   maphash.Seed
	shards [32]limiterShard
}

// A shard's buckets are keyed by the client key's 64-bit hash (seeded per
// process), not the key: a header's value may be as long as
// max_header_bytes, and a flood of distinct long keys would otherwise
// hold that much each. Two keys that share a hash share a bucket, about a
// 2^-64 chance per pair.
type limiterShard struct {
	mu      sync.Mutex
	buckets map[uint64]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBucketsPerShard bounds memory against a flood of distinct keys; a
// shard that is full forgets its idle clients first, then an eighth of
// the others, chosen at random (map order), rather than all of them:
// clients being throttled mostly stay so.
const maxBucketsPerShard = 1 << 14

func newRateLimiter(cfg RateLimitConfig) *rateLimiter {
	rl := &rateLimiter{cfg: cfg, seed: maphash.MakeSeed()}
	if len(cfg.Key) > len("header:") && cfg.Key[:len("header:")] == "header:" {
		rl.header = http.CanonicalHeaderKey(cfg.Key[len("header:"):])
	}
	for i := range rl.shards {
		rl.shards[i].buckets = map[uint64]*bucket{}
	}
	return rl
}

// clientKey names the client a request is counted against; client is
// its address when its peer is a trusted proxy (exchange.client).
func (rl *rateLimiter) clientKey(r *http.Request, client string) string {
	if rl.header != "" {
		if v := r.Header.Get(rl.header); v != "" {
			return "k:" + v
		}
	}
	if client != "" {
		return ipKey(client)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return ipKey(host)
}

// ipKey is the rate-limit key of a client address: the address itself
// for IPv4, its /64 for IPv6. Every IPv6 host holds at least a /64 and
// may pick a new address in it for each request, so counting single
// addresses would limit nobody (and fill the shards for the others).
func ipKey(host string) string {
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return "ip:" + host
	case a.Is4In6():
		return "ip:" + a.Unmap().String()
	case a.Is6():
		p, _ := a.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + host
}

// allow takes one token for key; when none is left it returns how long
// until one will be.
func (rl *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	h := maphash.String(rl.seed, key)
	sh := &rl.shards[h%uint64(len(rl.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[h]
	if b == nil {
		if len(sh.buckets) >= maxBucketsPerShard {
			sh.evict(now, rl.cfg)
		}
		b = &bucket{tokens: float64(rl.cfg.Burst), last: now}
		sh.buckets[h] = b
	}
	b.tokens = math.Min(float64(rl.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*rl.cfg.Rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / rl.cfg.Rate * float64(time.Second))
	return false, wait
}

func (sh *limiterShard) evict(now time.Time, cfg RateLimitConfig) {
	refill := time.Duration(float64(cfg.Burst) / cfg.Rate * float64(time.Second))
	for k, b := range sh.buckets {
		if now.Sub(b.last) >= refill {
			delete(sh.buckets, k) // would be full again: forgetting it is exact
		}
	}
	for k := range sh.buckets {
		if len(sh.buckets) <= maxBucketsPerShard*7/8 {
			break
		}
		delete(sh.buckets, k)
	}
}

// sweep drops buckets that have refilled completely; called periodically.
func (rl *rateLimiter) sweep(now time.Time) {
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		refill := time.Duration(float64(rl.cfg.Burst) / rl.cfg.Rate * float64(time.Second))
		for k, b := range sh.buckets {
			if now.Sub(b.last) >= refill {
				delete(sh.buckets, k)
			}
		}
		sh.mu.Unlock()
	}
}
