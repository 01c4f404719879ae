package backend

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/cache"
	"github.com/vigilhq/vigil/platform/pubsub"
)

// redisLocalTTL is how long a replica keeps a generation or card it read from Redis:
// none. The platform cache's local tier drops another replica's change only when the
// pub/sub message arrives, after the writer has returned; a card is a read-your-writes
// view (an update through one replica must show on the next GetPerson through any
// other), so with Redis every lookup reads Redis, where a write is visible at once.
// (A zero LocalTTL means the default to cache.New, hence one nanosecond.)
const redisLocalTTL = time.Nanosecond

// personCards is GetPerson's read-through cache of person cards: the protobuf-encoded
// backendv1.Person under the workspace and person id, so a card is only ever found by
// the workspace that owns it.
//
// A card is stored under the person's current generation, a random value in the cache
// too, and a change replaces the generation instead of deleting the card. A plain delete
// would race with a concurrent miss: a reader (on any replica) that loaded the person
// before the change committed could store its old card after the change's delete, to be
// served until the TTL. Under generations that late card lands under the old one, which
// no reader asks for any more. A reader that finds no generation creates a fresh one
// before it reads the database, so a card is always younger than its generation.
type personCards struct {
	cache *cache.Cache
	ttl   time.Duration
	log   *slog.Logger

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

func (c *personCards) genKey(workspace, person uuid.UUID) string {
	return "backend:person-gen:" + workspace.String() + ":" + person.String()
}

func (c *personCards) cardKey(workspace, person uuid.UUID, gen []byte) string {
	return "backend:person:" + workspace.String() + ":" + person.String() + ":" + string(gen)
}

// newGeneration stores a fresh generation of a person and returns it. It lives as long
// as a card (a card outliving it is merely never found).
func (c *personCards) newGeneration(ctx context.Context, workspace, person uuid.UUID) ([]byte, error) {
	gen := []byte(uuid.NewString())
	return gen, c.cache.Set(ctx, c.genKey(workspace, person), gen, c.ttl)
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
		return b.personFromDB(ctx, sc, id)
	}
	gen, ok, err := c.cache.Get(ctx, c.genKey(sc.workspace, id))
	if err == nil && !ok {
		gen, err = c.newGeneration(ctx, sc.workspace, id)
	}
	if err != nil {
		c.log.WarnContext(ctx, "person cache unavailable; reading the database", "err", err)
		return b.personFromDB(ctx, sc, id)
	}
	key := c.cardKey(sc.workspace, id, gen)
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
	out, err := b.personFromDB(ctx, sc, id)
	if err != nil {
		return nil, err // not-found is not cached: a created person is visible at once
	}
	if enc, err := proto.Marshal(out); err == nil {
		if err := c.cache.Set(ctx, key, enc, c.ttl); err != nil {
			c.log.WarnContext(ctx, "person cache write failed", "err", err)
		}
	}
	return out, nil
}

func (b *Backend) personFromDB(ctx context.Context, sc scope, id uuid.UUID) (*backendv1.Person, error) {
	p, err := b.getPerson(ctx, sc, id, false)
	if err != nil {
		return nil, err
	}
	return personToProto(p), nil
}

// invalidatePersons gives persons a new generation (their cached cards are then never
// found) once the transaction in ctx commits: the caller has written their rows, and the
// call has not yet returned to its client.
func (b *Backend) invalidatePersons(ctx context.Context, sc scope, ids ...uuid.UUID) {
	c := b.cards
	if c == nil || len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	b.db.afterCommit(ctx, func() {
		ctx := context.WithoutCancel(ctx)
		for _, id := range ids {
			if _, err := c.newGeneration(ctx, sc.workspace, id); err != nil {
				// The old card may be served until its TTL (person_cache_ttl).
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
