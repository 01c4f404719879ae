package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/rpc"
)

// webhookMatcher is the part of the backend's WebhookService the dispatcher asks which
// webhooks want an event.
type webhookMatcher interface {
	MatchWebhooks(ctx context.Context, in *backendv1.MatchWebhooksRequest, opts ...grpc.CallOption) (*backendv1.MatchWebhooksResponse, error)
}

// Dispatcher turns event notifications (topic vigil.notifications.v1) into webhook
// deliveries: it asks the backend which of the workspace's webhooks accept the event and
// queues one delivery per webhook — or, for a webhook with batch_size > 1, adds the
// event to the webhook's pending batch (posted as a JSON array after webhook_batch_linger
// or when full). Deliveries are unique per (webhook, event), so a notification seen
// twice (Kafka is at-least-once) queues nothing the second time.
type Dispatcher struct {
	pool    *pgxpool.Pool
	queue   func() *Queue
	linger  time.Duration
	matcher func() (webhookMatcher, error)
	metrics *metrics
}

// notificationJSON is the body integrators receive: the same Notification the WebSocket
// streams carry, in the REST API's JSON style.
var notificationJSON = protojson.MarshalOptions{}

// Dispatch queues the webhook deliveries of one notification. Activity notifications
// are not webhook events and are ignored.
func (d *Dispatcher) Dispatch(ctx context.Context, n *eventservicev1.Notification) (int, error) {
	var ev *eventservicev1.Event
	var typ backendv1.EventType
	switch k := n.GetKind().(type) {
	case *eventservicev1.Notification_Identification:
		ev, typ = k.Identification.GetEvent(), backendv1.EventType_EVENT_TYPE_IDENTIFICATION
	case *eventservicev1.Notification_NonIdentification:
		ev, typ = k.NonIdentification.GetEvent(), backendv1.EventType_EVENT_TYPE_NON_IDENTIFICATION
	default:
		return 0, nil
	}
	ws := n.GetWorkspaceId()
	if ws == "" || ev.GetEventId() == "" {
		return 0, fmt.Errorf("%w: notification %q names no workspace or event", ErrInvalid, n.GetNotificationId())
	}
	m, err := d.matcher()
	if err != nil {
		return 0, fmt.Errorf("%w: backend: %v", ErrUnavailable, err)
	}
	mctx := metadata.AppendToOutgoingContext(ctx, rpc.MetadataWorkspace, ws)
	resp, err := m.MatchWebhooks(mctx, &backendv1.MatchWebhooksRequest{
		EventType: typ,
		GroupId:   ev.GetIdentification().GetGroupId(),
		CameraId:  ev.GetCameraId(),
	})
	if err != nil {
		switch status.Code(err) {
		case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.PermissionDenied:
			// The backend will never accept this notification (e.g. an unknown or erased
			// workspace): retrying would block its Kafka partition forever.
			return 0, fmt.Errorf("%w: match webhooks of event %s: %v", ErrInvalid, ev.GetEventId(), err)
		}
		return 0, fmt.Errorf("match webhooks of event %s: %w", ev.GetEventId(), err)
	}
	if len(resp.GetWebhooks()) == 0 {
		return 0, nil
	}
	body, err := notificationJSON.Marshal(n)
	if err != nil {
		return 0, fmt.Errorf("encode notification %s: %w", n.GetNotificationId(), err)
	}
	deliveries := make([]jobs.Args, 0, len(resp.GetWebhooks()))
	var batched []webhookBatchArgs
	for _, h := range resp.GetWebhooks() {
		if h.GetBatchSize() > 1 {
			batched = append(batched, webhookBatchArgs{
				WorkspaceID: ws, WebhookID: h.GetId(), URL: h.GetUrl(), Secret: h.GetSecret(), BatchSize: int(h.GetBatchSize()),
			})
			continue
		}
		deliveries = append(deliveries, jobs.WebhookDeliveryArgs{
			WorkspaceID: ws,
			WebhookID:   h.GetId(),
			URL:         h.GetUrl(),
			Secret:      h.GetSecret(),
			EventIDs:    []string{ev.GetEventId()},
			Body:        body,
		})
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := jobs.InsertManyTx(ctx, tx, deliveries); err != nil {
			return err
		}
		for _, b := range batched {
			if err := queueBatched(ctx, tx, d.queue(), d.linger, b, ev.GetEventId(), body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("queue deliveries of event %s: %w", ev.GetEventId(), err)
	}
	queued := len(deliveries) + len(batched)
	d.metrics.webhookFanout.Add(float64(queued))
	return queued, nil
}
