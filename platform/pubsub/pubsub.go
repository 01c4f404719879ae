// Package pubsub is fire-and-forget publish/subscribe between the replicas of a
// deployment (live notifications, cache invalidations): Redis pub/sub when Redis is
// configured, in-process otherwise. Like Redis's, delivery is at most once: a
// subscriber that is not listening, or too slow, misses messages.
package pubsub

import (
	"context"
)

// PubSub publishes messages on named channels and delivers them to every subscriber.
type PubSub interface {
	// Publish sends msg to every current subscriber of channel.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe delivers the messages published on channel from the moment it returns
	// until ctx ends, when the returned channel is closed.
	Subscribe(ctx context.Context, channel string) (<-chan []byte, error)
}

// subscriberBuffer is how many messages wait for a slow subscriber before it misses some.
const subscriberBuffer = 256
