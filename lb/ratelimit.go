package lb

import (
	"hash/maphash"
	"math"
	"net"
	"net/http"
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

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBucketsPerShard bounds memory against a flood of distinct keys; a
// shard that is full forgets its idle clients first, then all of them.
const maxBucketsPerShard = 1 << 14

func newRateLimiter(cfg RateLimitConfig) *rateLimiter {
	rl := &rateLimiter{cfg: cfg, seed: maphash.MakeSeed()}
	if len(cfg.Key) > len("header:") && cfg.Key[:len("header:")] == "header:" {
		rl.header = http.CanonicalHeaderKey(cfg.Key[len("header:"):])
	}
	for i := range rl.shards {
		rl.shards[i].buckets = map[string]*bucket{}
	}
	return rl
}

// clientKey names the client a request is counted against.
func (rl *rateLimiter) clientKey(r *http.Request) string {
	if rl.header != "" {
		if v := r.Header.Get(rl.header); v != "" {
			return "k:" + v
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// allow takes one token for key; when none is left it returns how long
// until one will be.
func (rl *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	sh := &rl.shards[maphash.String(rl.seed, key)%uint64(len(rl.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.buckets[key]
	if b == nil {
		if len(sh.buckets) >= maxBucketsPerShard {
			sh.evict(now, rl.cfg)
		}
		b = &bucket{tokens: float64(rl.cfg.Burst), last: now}
		sh.buckets[key] = b
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
	if len(sh.buckets) >= maxBucketsPerShard {
		clear(sh.buckets)
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
