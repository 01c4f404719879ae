package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/config"
)

// RedisConn is the process's Redis connection; Client is nil when no Redis is configured.
type RedisConn struct {
	Client *redis.Client
}

// ProvideRedisConn connects to the configured Redis (checked when the app starts) or
// returns an empty RedisConn.
func ProvideRedisConn(lc fx.Lifecycle, cfg *config.Config) *RedisConn {
	if cfg.Redis.Addr == "" {
		return &RedisConn{}
	}
	c := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := c.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis at %s: %w", cfg.Redis.Addr, err)
			}
			return nil
		},
		OnStop: func(context.Context) error { return c.Close() },
	})
	return &RedisConn{Client: c}
}

// Provide returns Redis pub/sub when Redis is configured, in-process otherwise.
func Provide(r *RedisConn, l *slog.Logger) PubSub {
	l = l.With("service", "pubsub")
	if r.Client != nil {
		return NewRedis(r.Client, l)
	}
	return NewMemory(l)
}

// Module provides PubSub and *RedisConn.
var Module = fx.Provide(ProvideRedisConn, Provide)
