package auth

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/vigilhq/vigil/platform/rpc"
)

// Invalidator drops cached lookups of a subject (user, API key or agent id), so a
// revocation, a role change or a deleted agent takes effect at once. The backend calls it
// after such changes commit.
type Invalidator interface {
	InvalidateSubject(ctx context.Context, subjectID string)
}

// Identity is what a credential resolved to.
type Identity struct {
	// Principal without the per-call PeerAddr.
	Principal rpc.Principal
	// Superuser: a platform operator's session, which may also call KIND_SYSTEM methods.
	Superuser bool
	// Expire is when the credential stops being valid; zero for never.
	Expire time.Time
}

type cacheEntry struct {
	id    *Identity
	until time.Time
}

// Cache is the read-through cache of credential lookups, keyed by the SHA-256 of the
// credential (so the cache never holds a usable secret), with an index by subject for
// invalidation. Entries live TTL at most, and never past the credential's expiry.
type Cache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu        sync.Mutex
	entries   map[[32]byte]cacheEntry
	bySubject map[string]map[[32]byte]struct{}
}

// NewCache returns a cache of at most max entries living at most ttl.
func NewCache(ttl time.Duration, max int) *Cache {
	return &Cache{ttl: ttl, max: max, now: time.Now, entries: map[[32]byte]cacheEntry{}, bySubject: map[string]map[[32]byte]struct{}{}}
}

func cacheKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// Get returns the cached identity of token.
func (c *Cache) Get(token string) (*Identity, bool) {
	k := cacheKey(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.until) {
		c.dropLocked(k, e.id.Principal.SubjectID)
		return nil, false
	}
	return e.id, true
}

// Put caches the identity of token.
func (c *Cache) Put(token string, id *Identity) {
	until := c.now().Add(c.ttl)
	if !id.Expire.IsZero() && id.Expire.Before(until) {
		until = id.Expire
	}
	k := cacheKey(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Full: drop expired entries, then, if still full, an arbitrary one (map order).
		now := c.now()
		for ek, e := range c.entries {
			if !now.Before(e.until) {
				c.dropLocked(ek, e.id.Principal.SubjectID)
			}
		}
		for ek, e := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			c.dropLocked(ek, e.id.Principal.SubjectID)
		}
	}
	c.entries[k] = cacheEntry{id: id, until: until}
	s := c.bySubject[id.Principal.SubjectID]
	if s == nil {
		s = map[[32]byte]struct{}{}
		c.bySubject[id.Principal.SubjectID] = s
	}
	s[k] = struct{}{}
}

func (c *Cache) dropLocked(k [32]byte, subject string) {
	delete(c.entries, k)
	if s := c.bySubject[subject]; s != nil {
		delete(s, k)
		if len(s) == 0 {
			delete(c.bySubject, subject)
		}
	}
}

// InvalidateSubject implements Invalidator.
func (c *Cache) InvalidateSubject(_ context.Context, subjectID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.bySubject[subjectID] {
		delete(c.entries, k)
	}
	delete(c.bySubject, subjectID)
}

// Len is the number of cached entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
