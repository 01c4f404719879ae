package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/services/tasks"
)

// receiver is an integrator's webhook endpoint: it checks every request's signature the
// way integrators are told to, and answers 500 to the first attempt of each event.
type receiver struct {
	secret string

	mu       sync.Mutex
	attempts map[string][]received // by notification id
	invalid  []string
}

type received struct {
	status   int
	attempt  string
	delivery string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := jobs.Verify(r.secret, req.Header.Get(jobs.HeaderSignature), req.Header.Get(jobs.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
		r.invalid = append(r.invalid, err.Error())
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var n eventservicev1.Notification
	if err := protojson.Unmarshal(body, &n); err != nil || req.Header.Get("Content-Type") != "application/json" {
		r.invalid = append(r.invalid, "body is not a notification: "+string(body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	id := n.GetNotificationId()
	code := http.StatusOK
	if len(r.attempts[id]) == 0 {
		code = http.StatusInternalServerError
	}
	r.attempts[id] = append(r.attempts[id], received{status: code, attempt: req.Header.Get("X-Vigil-Attempt"), delivery: req.Header.Get(jobs.HeaderDelivery)})
	w.WriteHeader(code)
	_, _ = io.WriteString(w, http.StatusText(code))
}

func (r *receiver) got(id string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.attempts[id]...)
}

func identification(ws, eventID, cameraID string) *eventservicev1.Notification {
	return &eventservicev1.Notification{
		WorkspaceId:    ws,
		NotificationId: eventID,
		PublishTime:    timestamppb.Now(),
		Kind: &eventservicev1.Notification_Identification{Identification: &eventservicev1.IdentificationNotification{
			Event: &eventservicev1.Event{
				EventId: eventID, WorkspaceId: ws, Type: eventservicev1.EventType_EVENT_TYPE_IDENTIFICATION,
				CameraId: cameraID, EventTime: timestamppb.Now(),
			},
		}},
	}
}

// An event notification on Kafka reaches the integrator's endpoint, signed; the first
// attempt's 500 is retried with back-off; both attempts are in the backend's delivery
// log; a notification seen twice is delivered once.
func TestWebhookDeliveredSignedAndRetriedAfter500(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	recv := &receiver{secret: "a-webhook-secret-of-sufficient-length", attempts: map[string][]received{}}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)

	webhooks := backendv1.NewWebhookServiceClient(s.conn)
	created, err := webhooks.CreateWebhook(s.in(), &backendv1.CreateWebhookRequest{Webhook: &backendv1.Webhook{
		Url: srv.URL + "/hooks/vigil", Secret: recv.secret, Enabled: true,
	}})
	require.NoError(t, err)
	hookID := created.GetWebhook().GetId()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := s.kafka.Writer(tasks.NotificationsTopic)
	t.Cleanup(func() { _ = w.Close() })
	publish := func(n *eventservicev1.Notification) {
		b, err := proto.Marshal(n)
		require.NoError(t, err)
		require.NoError(t, w.WriteMessages(ctx, kafkago.Message{Key: []byte(n.GetWorkspaceId()), Value: b}))
	}

	first := identification(s.workspace, "event-1", "")
	publish(first)
	require.Eventually(t, func() bool { return len(recv.got("event-1")) == 2 }, 20*time.Second, 20*time.Millisecond)
	got := recv.got("event-1")
	require.Equal(t, http.StatusInternalServerError, got[0].status)
	require.Equal(t, "1", got[0].attempt)
	require.Equal(t, http.StatusOK, got[1].status)
	require.Equal(t, "2", got[1].attempt)
	require.Equal(t, got[0].delivery, got[1].delivery, "one delivery id across its retries")

	// The same notification again (Kafka redelivers), then another event: by the time the
	// second arrives the duplicate was handled (same partition, in order), and it caused
	// no new POST.
	publish(first)
	publish(identification(s.workspace, "event-2", ""))
	require.Eventually(t, func() bool { return len(recv.got("event-2")) == 2 }, 20*time.Second, 20*time.Millisecond)
	require.Len(t, recv.got("event-1"), 2)

	recv.mu.Lock()
	require.Empty(t, recv.invalid, "every request carried a valid signature and a notification body")
	recv.mu.Unlock()

	// The backend's delivery log holds every attempt, newest first.
	require.Eventually(t, func() bool {
		log, err := webhooks.ListWebhookDeliveries(s.in(), &backendv1.ListWebhookDeliveriesRequest{WebhookId: hookID})
		require.NoError(t, err)
		return len(log.GetDeliveries()) == 4
	}, 10*time.Second, 20*time.Millisecond)
	log, err := webhooks.ListWebhookDeliveries(s.in(), &backendv1.ListWebhookDeliveriesRequest{WebhookId: hookID})
	require.NoError(t, err)
	byEvent := map[string][]*backendv1.WebhookDelivery{}
	for _, d := range log.GetDeliveries() {
		require.Len(t, d.GetEventIds(), 1)
		byEvent[d.GetEventIds()[0]] = append(byEvent[d.GetEventIds()[0]], d)
	}
	for _, id := range []string{"event-1", "event-2"} {
		ds := byEvent[id]
		require.Len(t, ds, 2, id)
		attempts := map[int32]*backendv1.WebhookDelivery{ds[0].GetAttempt(): ds[0], ds[1].GetAttempt(): ds[1]}
		require.False(t, attempts[1].GetSucceeded())
		require.Equal(t, int32(500), attempts[1].GetStatusCode())
		require.Contains(t, attempts[1].GetError(), "HTTP 500")
		require.True(t, attempts[2].GetSucceeded())
		require.Equal(t, int32(200), attempts[2].GetStatusCode())
		require.Empty(t, attempts[2].GetError())
	}
}

// A receiver that never answers in time: every attempt times out (no status), is
// logged, and after the delivery's attempts the job is dead. The delivery is queued the
// way any component may, with jobs.InsertTx in its own transaction.
func TestWebhookTimeoutsAreRetriedThenDead(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })

	webhooks := backendv1.NewWebhookServiceClient(s.conn)
	hookID, jobID := queueDelivery(t, s, slow.URL, "another-secret-of-enough-length", "event-slow", []byte(`{"notificationId":"event-slow"}`), 2)
	ctx := context.Background()

	require.Eventually(t, func() bool {
		var state string
		require.NoError(t, s.pool.QueryRow(ctx, `SELECT state FROM river_job WHERE id = $1`, jobID).Scan(&state))
		return state == "discarded"
	}, 30*time.Second, 50*time.Millisecond, "the delivery dies after its attempts")

	log, err := webhooks.ListWebhookDeliveries(s.in(), &backendv1.ListWebhookDeliveriesRequest{WebhookId: hookID})
	require.NoError(t, err)
	require.Len(t, log.GetDeliveries(), 2)
	for _, d := range log.GetDeliveries() {
		require.False(t, d.GetSucceeded())
		require.Zero(t, d.GetStatusCode(), "no answer, no status")
		require.Contains(t, d.GetError(), "Timeout")
		require.GreaterOrEqual(t, d.GetDurationMs(), int32(1900))
	}
}

// queueDelivery creates an enabled webhook for url and queues one delivery
// of body for it straight into the job queue, the way any component may
// (jobs.InsertTx in its own transaction). It returns the webhook and job ids.
func queueDelivery(t *testing.T, s *stack, url, secret, eventID string, body []byte, maxAttempts int) (string, int64) {
	t.Helper()
	created, err := backendv1.NewWebhookServiceClient(s.conn).CreateWebhook(s.in(), &backendv1.CreateWebhookRequest{Webhook: &backendv1.Webhook{
		Url: url, Secret: secret, Enabled: true,
	}})
	require.NoError(t, err)
	hookID := created.GetWebhook().GetId()
	ctx := context.Background()
	var jobID int64
	require.NoError(t, pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		jobID, err = jobs.InsertTx(ctx, tx, jobs.WebhookDeliveryArgs{
			WorkspaceID: s.workspace, WebhookID: hookID, URL: url, Secret: secret,
			EventIDs: []string{eventID}, Body: body,
		}, &jobs.InsertOpts{MaxAttempts: maxAttempts})
		return err
	}))
	return hookID, jobID
}

// Deleting a webhook stops the retries of its queued deliveries: the next failed attempt
// finds the webhook gone and the delivery goes to the dead letter.
func TestDeletedWebhookStopsRetrying(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	var posts atomic.Int32
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)

	webhooks := backendv1.NewWebhookServiceClient(s.conn)
	hookID, jobID := queueDelivery(t, s, failing.URL, "yet-another-secret-long-enough", "event-x", []byte(`{}`), 1000)
	ctx := context.Background()
	require.Eventually(t, func() bool { return posts.Load() >= 2 }, 20*time.Second, 20*time.Millisecond, "retried while the webhook exists")
	_, err := webhooks.DeleteWebhook(s.in(), &backendv1.DeleteWebhookRequest{WebhookId: hookID})
	require.NoError(t, err)

	var state string
	var dead bool
	require.Eventually(t, func() bool {
		require.NoError(t, s.pool.QueryRow(ctx, `SELECT state, coalesce((metadata->>'vigil_dead')::bool, false) FROM river_job WHERE id = $1`, jobID).Scan(&state, &dead))
		return state == "cancelled"
	}, 20*time.Second, 20*time.Millisecond)
	require.True(t, dead, "stopped as dead, not as cancelled by a user")
}

// A webhook with batch_size 3 gets the events of a burst as JSON arrays of up to three
// notifications, each event exactly once, signed like single deliveries; a replayed
// notification is not delivered again.
func TestWebhookBatchesEvents(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const secret = "batch-secret-of-sufficient-length"
	var mu sync.Mutex
	var batches [][]string
	var invalid []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := jobs.Verify(secret, req.Header.Get(jobs.HeaderSignature), req.Header.Get(jobs.HeaderTimestamp), body, time.Now(), time.Minute); err != nil {
			invalid = append(invalid, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			invalid = append(invalid, "not a JSON array: "+string(body))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var ids []string
		for _, it := range items {
			var n eventservicev1.Notification
			if err := protojson.Unmarshal(it, &n); err != nil {
				invalid = append(invalid, err.Error())
			}
			ids = append(ids, n.GetNotificationId())
		}
		batches = append(batches, ids)
	}))
	t.Cleanup(srv.Close)

	_, err := backendv1.NewWebhookServiceClient(s.conn).CreateWebhook(s.in(), &backendv1.CreateWebhookRequest{Webhook: &backendv1.Webhook{
		Url: srv.URL, Secret: secret, Enabled: true, BatchSize: 3,
	}})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := s.kafka.Writer(tasks.NotificationsTopic)
	t.Cleanup(func() { _ = w.Close() })
	var msgs []kafkago.Message
	for i := range 5 {
		b, err := proto.Marshal(identification(s.workspace, fmt.Sprintf("burst-%d", i), ""))
		require.NoError(t, err)
		msgs = append(msgs, kafkago.Message{Key: []byte(s.workspace), Value: b})
	}
	msgs = append(msgs, msgs[2]) // a replay
	require.NoError(t, w.WriteMessages(ctx, msgs...))

	delivered := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]int{}
		for _, b := range batches {
			for _, id := range b {
				seen[id]++
			}
		}
		return seen
	}
	require.Eventually(t, func() bool { return len(delivered()) == 5 }, 20*time.Second, 20*time.Millisecond)
	// One more notification after the burst: once it arrives, the replay was handled.
	b, err := proto.Marshal(identification(s.workspace, "after", ""))
	require.NoError(t, err)
	require.NoError(t, w.WriteMessages(ctx, kafkago.Message{Key: []byte(s.workspace), Value: b}))
	require.Eventually(t, func() bool { return delivered()["after"] == 1 }, 20*time.Second, 20*time.Millisecond)

	seen := delivered()
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, invalid)
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s delivered once", id)
	}
	most := 0
	for _, b := range batches {
		require.LessOrEqual(t, len(b), 3)
		most = max(most, len(b))
	}
	require.Greater(t, most, 1, "a burst shares POSTs: %v", batches)
}
