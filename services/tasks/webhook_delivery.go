package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/rpc"
)

// deliveryRecorder is the part of the backend's WebhookService the delivery worker
// writes the delivery log through.
type deliveryRecorder interface {
	RecordWebhookDelivery(ctx context.Context, in *backendv1.RecordWebhookDeliveryRequest, opts ...grpc.CallOption) (*backendv1.RecordWebhookDeliveryResponse, error)
}

// webhookWorker POSTs a signed event body to a webhook. A non-2xx answer, a redirect or
// no answer within the time-out fails the attempt; River retries it with exponential
// back-off until the kind's attempts run out (then the delivery is dead). Every attempt,
// good or bad, goes to the backend's delivery log.
type webhookWorker struct {
	river.WorkerDefaults[jobs.WebhookDeliveryArgs]

	pool     *pgxpool.Pool
	client   *http.Client
	timeout  time.Duration
	recorder func() (deliveryRecorder, error)
	metrics  *metrics
	log      *slog.Logger
}

// maxErrorBody is how much of a failed answer's body is kept in the log.
const maxErrorBody = 512

func newWebhookWorker(pool *pgxpool.Pool, timeout time.Duration, recorder func() (deliveryRecorder, error), m *metrics, log *slog.Logger) *webhookWorker {
	return &webhookWorker{
		pool: pool,
		client: &http.Client{
			Timeout: timeout,
			// A webhook answers where it was registered: a redirect is a misconfiguration
			// to surface in the log, not to follow with the signature attached.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout:  timeout,
		recorder: recorder,
		metrics:  m,
		log:      log,
	}
}

// Timeout leaves room after the HTTP time-out to record the attempt.
func (w *webhookWorker) Timeout(*river.Job[jobs.WebhookDeliveryArgs]) time.Duration {
	return w.timeout + 10*time.Second
}

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[jobs.WebhookDeliveryArgs]) error {
	a := job.Args
	start := time.Now()
	code, deliveryErr := w.post(ctx, job.ID, job.Attempt, a)
	took := time.Since(start)

	ok := deliveryErr == nil
	w.metrics.webhookAttempts.WithLabelValues(strconv.FormatBool(ok)).Inc()
	w.metrics.webhookSeconds.Observe(took.Seconds())

	d := &backendv1.WebhookDelivery{
		WebhookId:    a.WebhookID,
		EventIds:     a.EventIDs,
		Attempt:      int32(job.Attempt),
		StatusCode:   int32(code),
		Succeeded:    ok,
		DeliveryTime: timestamppb.New(start),
		DurationMs:   int32(took.Milliseconds()),
	}
	if deliveryErr != nil {
		d.Error = deliveryErr.Error()
	}
	if err := w.record(ctx, a.WorkspaceID, d); err != nil {
		if status.Code(err) == codes.NotFound && deliveryErr != nil {
			// The webhook was deleted since the delivery was queued: stop retrying it.
			return settle(ctx, w.pool, job.ID, permanent(fmt.Errorf("%w; webhook %s no longer exists", deliveryErr, a.WebhookID)))
		}
		// The attempt happened whatever the log says; failing the job for a log write
		// would POST the event again. The River row keeps the attempt's error anyway.
		w.metrics.webhookLogFailures.Inc()
		w.log.WarnContext(ctx, "webhook delivery not logged", "job_id", job.ID, "webhook_id", a.WebhookID, "err", err)
	}
	return settle(ctx, w.pool, job.ID, deliveryErr)
}

// post makes one attempt and returns the HTTP status (0 without an answer).
func (w *webhookWorker) post(ctx context.Context, jobID int64, attempt int, a jobs.WebhookDeliveryArgs) (int, error) {
	ts := time.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(a.Body))
	if err != nil {
		// A URL Go cannot even build a request for will not get better.
		return 0, permanent(fmt.Errorf("webhook url: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil-Webhooks/1")
	req.Header.Set(jobs.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(jobs.HeaderSignature, jobs.Sign(a.Secret, ts, a.Body))
	req.Header.Set(jobs.HeaderDelivery, strconv.FormatInt(jobID, 10))
	req.Header.Set("X-Vigil-Attempt", strconv.Itoa(attempt))

	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("POST %s: %w", redactURL(req), err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := fmt.Sprintf("POST %s: HTTP %d", redactURL(req), resp.StatusCode)
		if len(bytes.TrimSpace(snippet)) > 0 {
			msg += ": " + string(bytes.ToValidUTF8(bytes.TrimSpace(snippet), []byte("?")))
		}
		return resp.StatusCode, errors.New(msg)
	}
	return resp.StatusCode, nil
}

// redactURL drops credentials and the query (which may carry tokens) from log text.
func redactURL(req *http.Request) string {
	u := *req.URL
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

func (w *webhookWorker) record(ctx context.Context, ws string, d *backendv1.WebhookDelivery) error {
	rec, err := w.recorder()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, rpc.MetadataWorkspace, ws)
	_, err = rec.RecordWebhookDelivery(ctx, &backendv1.RecordWebhookDeliveryRequest{Delivery: d})
	return err
}
