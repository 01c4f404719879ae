package auth

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/pubsub"
)

// InvalidationChannel carries subject ids whose cached credentials every replica drops.
const InvalidationChannel = "vigil.auth.invalidate.v1"

// BroadcastInvalidator drops a subject's cached credentials here and, through pub/sub
// (Redis when configured), in every other process, so a revoked key stops working
// everywhere at once rather than after the cache TTL.
type BroadcastInvalidator struct {
	cache *Cache
	ps    pubsub.PubSub
	log   *slog.Logger
}

// NewBroadcastInvalidator listens for invalidations from the other processes while the
// app runs.
func NewBroadcastInvalidator(lc fx.Lifecycle, cache *Cache, ps pubsub.PubSub, l *slog.Logger) *BroadcastInvalidator {
	b := &BroadcastInvalidator{cache: cache, ps: ps, log: l}
	ctx, cancel := context.WithCancel(context.Background())
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ch, err := ps.Subscribe(ctx, InvalidationChannel)
			if err != nil {
				return err
			}
			go func() {
				for msg := range ch {
					cache.InvalidateSubject(ctx, string(msg))
				}
			}()
			return nil
		},
		OnStop: func(context.Context) error { cancel(); return nil },
	})
	return b
}

// InvalidateSubject implements Invalidator.
func (b *BroadcastInvalidator) InvalidateSubject(ctx context.Context, subjectID string) {
	b.cache.InvalidateSubject(ctx, subjectID)
	if err := b.ps.Publish(ctx, InvalidationChannel, []byte(subjectID)); err != nil {
		// The other processes still drop it within the cache TTL.
		b.log.WarnContext(ctx, "credential invalidation not broadcast", "subject_id", subjectID, "err", err)
	}
}
