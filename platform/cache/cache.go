// Package cache is the read-through cache for hot lookups (API keys, licenses, person
// cards). Each replica keeps entries in memory; with Redis configured a shared tier
// sits behind it. Writes and deletes broadcast an invalidation over pub/sub, so every
// other replica drops its local copy and no replica serves a value another one replaced.
package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/platform/pubsub"
)

// InvalidationChannel is the pub/sub channel of invalidations.
const InvalidationChannel = "vigil.cache.invalidate"

// keyPrefix namespaces Vigil's keys in a shared Redis.
const keyPrefix = "vigil:cache:"

// Options tune a Cache.
type Options struct {
	// MaxEntries bounds the local tier; beyond it arbitrary entries are evicted.
	MaxEntries int
	// LocalTTL caps how long the local tier keeps an entry read from Redis, bounding
	// staleness if an invalidation is ever missed (pub/sub is at most once).
	LocalTTL time.Duration
}

// Cache is a two-tier cache with cross-replica invalidation.
type Cache struct {
	redis  *redis.Client // nil: local tier only
	ps     pubsub.PubSub
	log    *slog.Logger
	origin string
	opts   Options

	mu      sync.Mutex
	entries map[string]entry

	stop context.CancelFunc
	done chan struct{}
}

type entry struct {
	value   []byte
	expires time.Time
}

// New returns a cache over rdb (nil for none) that listens for invalidations on ps until
// Close.
func New(ctx context.Context, rdb *redis.Client, ps pubsub.PubSub, opts Options, l *slog.Logger) (*Cache, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100_000
	}
	if opts.LocalTTL <= 0 {
		opts.LocalTTL = 30 * time.Second
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	c := &Cache{
		redis: rdb, ps: ps, log: l, origin: hex.EncodeToString(b), opts: opts,
		entries: map[string]entry{}, stop: stop, done: make(chan struct{}),
	}
	inv, err := ps.Subscribe(ctx, InvalidationChannel)
	if err != nil {
		stop()
		return nil, fmt.Errorf("cache: %w", err)
	}
	go c.listen(inv)
	return c, nil
}

// Close stops listening for invalidations.
func (c *Cache) Close() {
	c.stop()
	<-c.done
}

// Get returns the value under key, and whether there was one.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && now.After(e.expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if ok {
		return e.value, true, nil
	}
	if c.redis == nil {
		return nil, false, nil
	}
	// The value and its remaining TTL in one MULTI: one round trip, and
	// the key cannot expire between the two reads (a GET that saw it
	// followed by a PTTL that did not would keep a local copy for the full
	// LocalTTL after the shared one expired).
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := c.redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, keyPrefix+key)
		pttl = p.PTTL(ctx, keyPrefix+key)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache get %s: %w", key, err)
	}
	v, err := get.Bytes()
	if err != nil {
		return nil, false, fmt.Errorf("cache get %s: %w", key, err)
	}
	// PTTL is -1 for a key without expiry and 0 in its last millisecond;
	// a value about to expire is returned but not copied locally.
	ttl := c.opts.LocalTTL
	if d := pttl.Val(); d >= 0 && d < ttl {
		ttl = d
	}
	if ttl > 0 {
		c.storeLocal(key, v, ttl)
	}
	return v, true, nil
}

// Set stores value under key for ttl and tells the other replicas to drop their copy.
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("cache set %s: ttl must be positive", key)
	}
	value = append([]byte(nil), value...)
	if c.redis != nil {
		if err := c.redis.Set(ctx, keyPrefix+key, value, ttl).Err(); err != nil {
			return fmt.Errorf("cache set %s: %w", key, err)
		}
	}
	local := ttl
	if c.redis != nil && local > c.opts.LocalTTL {
		local = c.opts.LocalTTL
	}
	c.storeLocal(key, value, local)
	return c.broadcast(ctx, key)
}

// Delete removes key here, in Redis and on every other replica.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if c.redis != nil {
		if err := c.redis.Del(ctx, keyPrefix+key).Err(); err != nil {
			return fmt.Errorf("cache delete %s: %w", key, err)
		}
	}
	c.dropLocal(key)
	return c.broadcast(ctx, key)
}

// LocalLen is the number of entries in this replica's local tier.
func (c *Cache) LocalLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) storeLocal(key string, v []byte, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[key]; !exists && len(c.entries) >= c.opts.MaxEntries {
		now := time.Now()
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.opts.MaxEntries {
				break
			}
			delete(c.entries, k) // map order is random: a random eviction
		}
	}
	c.entries[key] = entry{value: v, expires: time.Now().Add(ttl)}
}

func (c *Cache) dropLocal(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// An invalidation message is "<origin> <key>"; a replica ignores its own.
func (c *Cache) broadcast(ctx context.Context, key string) error {
	if err := c.ps.Publish(ctx, InvalidationChannel, []byte(c.origin+" "+key)); err != nil {
		return fmt.Errorf("cache invalidate %s: %w", key, err)
	}
	return nil
}

func (c *Cache) listen(inv <-chan []byte) {
	defer close(c.done)
	for m := range inv {
		if len(m) <= len(c.origin) || string(m[:len(c.origin)]) == c.origin {
			continue
		}
		c.dropLocal(string(m[len(c.origin)+1:]))
	}
}
