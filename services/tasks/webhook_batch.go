package tasks

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/vigilhq/vigil/platform/jobs"
)

// kindWebhookBatch gathers a webhook's pending events into deliveries of up to
// batch_size events. Internal: users see the deliveries in the webhook's log.
const kindWebhookBatch = "vigil.webhook_batch"

type webhookBatchArgs struct {
	WorkspaceID string `json:"workspace_id"`
	WebhookID   string `json:"webhook_id"`
	URL         string `json:"url"`
	Secret      string `json:"secret"`
	BatchSize   int    `json:"batch_size"`
}

func (webhookBatchArgs) Kind() string { return kindWebhookBatch }

// batchInsertOpts: a batch job runs after linger, so the events of a burst share POSTs.
//
// Every event queues its own batch job, in the transaction that records the event, so
// some job is certain to run after the event is visible; the first one to run drains
// everything pending and the rest find nothing (cheap: no HTTP). A job unique per
// webhook would be fewer rows, but River's uniqueness must include the running state,
// so an event arriving while the batch job runs could wait for the next event.
func batchInsertOpts(linger time.Duration) *river.InsertOpts {
	return &river.InsertOpts{Queue: jobs.QueueWebhooks, ScheduledAt: time.Now().Add(linger)}
}

// queueBatched records an event for a batching webhook and queues a batch job, within
// tx. An event already recorded for the webhook (a replay) queues nothing.
func queueBatched(ctx context.Context, tx pgx.Tx, q *Queue, linger time.Duration, a webhookBatchArgs, eventID string, body []byte) error {
	tag, err := tx.Exec(ctx, `INSERT INTO tasks_webhook_pending (workspace_id, webhook_id, event_id, body)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, a.WorkspaceID, a.WebhookID, eventID, body)
	if err != nil {
		return fmt.Errorf("record pending event: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	if _, err := q.InsertTx(ctx, tx, a, batchInsertOpts(linger)); err != nil {
		return fmt.Errorf("queue webhook batch: %w", err)
	}
	return nil
}

// webhookBatchWorker turns the webhook's pending events, oldest first, into deliveries
// whose body is a JSON array of up to batch_size notifications. Each delivery is queued
// in the same transaction that marks its events batched, so an event is delivered in
// exactly one batch.
type webhookBatchWorker struct {
	river.WorkerDefaults[webhookBatchArgs]
	pool *pgxpool.Pool
}

func (w *webhookBatchWorker) Work(ctx context.Context, job *river.Job[webhookBatchArgs]) error {
	a := job.Args
	size := max(a.BatchSize, 1)
	for {
		n := 0
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT event_id, body FROM tasks_webhook_pending
				WHERE webhook_id = $1 AND delivery_job_id IS NULL
				ORDER BY create_time, event_id LIMIT $2 FOR UPDATE SKIP LOCKED`, a.WebhookID, size)
			if err != nil {
				return err
			}
			var ids []string
			body := bytes.NewBufferString("[")
			for rows.Next() {
				var id string
				var b []byte
				if err := rows.Scan(&id, &b); err != nil {
					rows.Close()
					return err
				}
				if len(ids) > 0 {
					body.WriteByte(',')
				}
				body.Write(b)
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			body.WriteByte(']')
			if n = len(ids); n == 0 {
				return nil
			}
			jobID, err := jobs.InsertTx(ctx, tx, jobs.WebhookDeliveryArgs{
				WorkspaceID: a.WorkspaceID, WebhookID: a.WebhookID, URL: a.URL, Secret: a.Secret,
				EventIDs: ids, Body: body.Bytes(),
			}, nil)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE tasks_webhook_pending SET delivery_job_id = $3
				WHERE webhook_id = $1 AND event_id = ANY($2)`, a.WebhookID, ids, jobID)
			return err
		})
		if err != nil {
			return fmt.Errorf("batch webhook %s: %w", a.WebhookID, err)
		}
		if n < size {
			return nil
		}
	}
}
