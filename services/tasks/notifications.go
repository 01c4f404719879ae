package tasks

import (
	"context"
	"errors"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/kafka"
)

// Kafka names of the webhook dispatcher.
const (
	// NotificationsTopic carries eventservicev1.Notification (binary proto), keyed by
	// workspace id; event-service writes it.
	NotificationsTopic = "vigil.notifications.v1"
	// webhooksGroup is the consumer group of the dispatchers: each notification is
	// dispatched by one tasks process.
	webhooksGroup = "vigil-webhooks"
)

// notificationConsumer feeds the notifications topic to the Dispatcher. An offset is
// committed only once its deliveries are queued, so a crash replays the notification
// (at-least-once) and the unique deliveries make the replay harmless. While the backend
// cannot answer, it retries the same notification with back-off rather than skip it.
type notificationConsumer struct {
	cluster    *kafka.Cluster
	dispatcher *Dispatcher
	log        *slog.Logger

	reader *kafkago.Reader
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *notificationConsumer) Start(ctx context.Context) error {
	if err := c.cluster.CreateTopics(ctx, kafka.Topic{Name: NotificationsTopic, Partitions: 8}); err != nil {
		return err
	}
	c.reader = c.cluster.Reader(kafkago.ReaderConfig{
		GroupID: webhooksGroup, Topic: NotificationsTopic, MaxWait: 250 * time.Millisecond,
		StartOffset: kafkago.FirstOffset,
	})
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go c.run(runCtx)
	return nil
}

func (c *notificationConsumer) Stop(context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	<-c.done
	return c.reader.Close()
}

func (c *notificationConsumer) run(ctx context.Context) {
	defer close(c.done)
	for {
		m, err := c.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.WarnContext(ctx, "read notification", "err", err)
			continue
		}
		c.handle(ctx, m)
		if ctx.Err() != nil {
			return // not committed: the next member of the group dispatches it again
		}
		if err := c.reader.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			c.log.WarnContext(ctx, "commit notification offset", "err", err, "offset", m.Offset)
		}
	}
}

// handle dispatches one message, retrying until it is queued, it proves malformed, or
// the consumer stops.
func (c *notificationConsumer) handle(ctx context.Context, m kafkago.Message) {
	var n eventservicev1.Notification
	if err := proto.Unmarshal(m.Value, &n); err != nil {
		c.log.ErrorContext(ctx, "skip malformed notification", "err", err, "partition", m.Partition, "offset", m.Offset)
		return
	}
	wait := 100 * time.Millisecond
	for {
		_, err := c.dispatcher.Dispatch(ctx, &n)
		if err == nil {
			return
		}
		if errors.Is(err, ErrInvalid) {
			c.log.ErrorContext(ctx, "skip invalid notification", "err", err, "notification_id", n.GetNotificationId())
			return
		}
		c.log.WarnContext(ctx, "dispatch notification; will retry", "err", err, "notification_id", n.GetNotificationId(), "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
