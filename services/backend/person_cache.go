package backend

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/cache"
	"github.com/vigilhq/vigil/platform/pubsub"
)

// redisLocalTTL is how long a replica keeps a person card it read from Redis: none. The
// platform cache's local tier drops another replica's invalidation only when the pub/sub
// message arrives, after the writer has returned; a card is a read-your-writes view (an
// update through one replica must show on the next GetPerson through any other), so with
// Redis every hit is read from Redis, where Delete is synchronous. (A zero LocalTTL means
// the default to cache.New, hence one nanosecond.)
const redisLocalTTL = time.Nanosecond

// personCards is GetPerson's read-through cache of person cards: the protobuf-encoded
// backendv1.Person under the workspace and person id, so a card is only ever found by
// the workspace that owns it.
type personCards struct {
	cache *cache.Cache
	ttl   time.Duration
	log   *slog.Logger

	// gen counts this process's invalidations. A reader that loaded a card before a
	// change committed could otherwise store it after the change's invalidation, and the
	// old card would be served until the TTL: a miss stores only if gen did not move
	// while it read the database, and deletes what it stored if gen moved meanwhile.
	gen atomic.Uint64

	lookups *prometheus.CounterVec
}

// newPersonCards builds the cache over rdb (nil: in-process only) and ps; nil when ttl
// is 0 (disabled) or there is no pub/sub.
func newPersonCards(rdb *redis.Client, ps pubsub.PubSub, ttl time.Duration, reg prometheus.Registerer, l *slog.Logger) (*personCards, error) {
	if ttl <= 0 || ps == nil {
		return nil, nil
	}
	opts := cache.Options{}
	if rdb != nil {
		opts.LocalTTL = redisLocalTTL
	}
	c, err := cache.New(context.Background(), rdb, ps, opts, l)
	if err != nil {
		return nil, err
	}
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_backend_person_cache_total",
		Help: "GetPerson lookups of the person-card cache, by result (hit, miss).",
	}, []string{"result"})
	if reg != nil {
		if err := reg.Register(lookups); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &personCards{cache: c, ttl: ttl, log: l, lookups: lookups}, nil
}

func (c *personCards) key(workspace, person uuid.UUID) string {
	return "backend:person:" + workspace.String() + ":" + person.String()
}

// PersonCard is GetPerson's answer, through the cache. Inside a transaction it reads the
// database (the transaction may see uncommitted changes, which must not be cached).
func (b *Backend) PersonCard(ctx context.Context, sc scope, personID string) (*backendv1.Person, error) {
	id, err := parseID("person_id", personID)
	if err != nil {
		return nil, err
	}
	c := b.cards
	if c == nil || b.db.inTransaction(ctx) {
		p, err := b.getPerson(ctx, sc, id, false)
		if err != nil {
			return nil, err
		}
		return personToProto(p), nil
	}
	key := c.key(sc.workspace, id)
	v, ok, err := c.cache.Get(ctx, key)
	if err != nil {
		c.log.WarnContext(ctx, "person cache read failed; reading the database", "err", err)
	}
	if ok {
		out := &backendv1.Person{}
		if err := proto.Unmarshal(v, out); err == nil {
			c.lookups.WithLabelValues("hit").Inc()
			return out, nil
		}
		c.log.WarnContext(ctx, "undecodable person card; reading the database", "key", key)
	}
	c.lookups.WithLabelValues("miss").Inc()
	gen := c.gen.Load()
	p, err := b.getPerson(ctx, sc, id, false)
	if err != nil {
		return nil, err // not-found is not cached: a created person is visible at once
	}
	out := personToProto(p)
	enc, err := proto.Marshal(out)
	if err != nil || c.gen.Load() != gen {
		return out, nil
	}
	if err := c.cache.Set(ctx, key, enc, c.ttl); err != nil {
		c.log.WarnContext(ctx, "person cache write failed", "err", err)
		return out, nil
	}
	if c.gen.Load() != gen {
		// An invalidation ran while we stored: what we read may predate it.
		if err := c.cache.Delete(context.WithoutCancel(ctx), key); err != nil {
			c.log.ErrorContext(ctx, "person cache delete failed", "err", err)
		}
	}
	return out, nil
}

// invalidatePersons drops the cached cards of persons once the transaction in ctx
// commits (the caller has written their rows), before the call returns to its client.
func (b *Backend) invalidatePersons(ctx context.Context, sc scope, ids ...uuid.UUID) {
	c := b.cards
	if c == nil || len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	b.db.afterCommit(ctx, func() {
		c.gen.Add(1)
		ctx := context.WithoutCancel(ctx)
		for _, id := range ids {
			if err := c.cache.Delete(ctx, c.key(sc.workspace, id)); err != nil {
				// The card may be served until its TTL (person_cache_ttl).
				c.log.ErrorContext(ctx, "person cache invalidation failed", "person", id, "err", err)
			}
		}
	})
}

// close stops the cache's invalidation listener.
func (c *personCards) close() {
	if c != nil {
		c.cache.Close()
	}
}
