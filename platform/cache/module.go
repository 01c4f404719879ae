package cache

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/pubsub"
)

// Provide is the fx constructor: the local tier, Redis behind it when configured.
func Provide(lc fx.Lifecycle, r *pubsub.RedisConn, ps pubsub.PubSub, l *slog.Logger) (*Cache, error) {
	c, err := New(context.Background(), r.Client, ps, Options{}, l.With("service", "cache"))
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(c.Close))
	return c, nil
}

// Module provides the *Cache (it needs pubsub.Module).
var Module = fx.Provide(Provide)
