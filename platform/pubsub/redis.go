package pubsub

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// Redis is the PubSub over Redis's PUBLISH/SUBSCRIBE, shared by every replica
// connected to the same server.
type Redis struct {
	client *redis.Client
	log    *slog.Logger
}

// NewRedis returns a PubSub over client.
func NewRedis(client *redis.Client, l *slog.Logger) *Redis {
	return &Redis{client: client, log: l}
}

// Publish implements PubSub.
func (r *Redis) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := r.client.Publish(ctx, channel, msg).Err(); err != nil {
		return fmt.Errorf("publish %s: %w", channel, err)
	}
	return nil
}

// Subscribe implements PubSub. It returns once Redis confirmed the subscription, so a
// message published after it returns is delivered.
func (r *Redis) Subscribe(ctx context.Context, channel string) (<-chan []byte, error) {
	ps := r.client.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("subscribe %s: %w", channel, err)
	}
	in := ps.Channel(redis.WithChannelSize(subscriberBuffer))
	out := make(chan []byte, subscriberBuffer)
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- []byte(m.Payload):
				case <-ctx.Done():
					return
				default:
					r.log.Warn("pubsub subscriber too slow; message dropped", "channel", channel)
				}
			}
		}
	}()
	return out, nil
}

var _ PubSub = (*Redis)(nil)
