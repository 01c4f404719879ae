package tasks

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/vigilhq/vigil/platform/jobs"
)

// Queue is the River client of this process: it inserts, works, cancels and retries
// jobs on the shared PostgreSQL.
type Queue = river.Client[pgx.Tx]

// newQueue builds the River client that runs workers on both queues.
func newQueue(pool *pgxpool.Pool, cfg Config, workers *river.Workers, errs river.ErrorHandler, logger *slog.Logger) (*Queue, error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			jobs.QueueDefault:  {MaxWorkers: cfg.Workers},
			jobs.QueueWebhooks: {MaxWorkers: cfg.WebhookWorkers},
		},
		Workers:                     workers,
		RetryPolicy:                 backoff{base: cfg.RetryBase, max: cfg.RetryMax},
		MaxAttempts:                 jobs.MaxAttemptsDefault,
		CompletedJobRetentionPeriod: cfg.KeepFinished,
		CancelledJobRetentionPeriod: cfg.KeepFinished,
		DiscardedJobRetentionPeriod: cfg.KeepDead,
		FetchPollInterval:           cfg.PollInterval,
		FetchCooldown:               min(river.FetchCooldownDefault, cfg.PollInterval),
		ErrorHandler:                errs,
		Logger:                      logger,
	})
}

// backoff is exponential back-off with jitter: base before the second attempt, doubling
// after each failure, at most max. River's default (attempt⁴ seconds) is not
// configurable, and tests need sub-second retries.
type backoff struct {
	base, max time.Duration
}

func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(b.delay(len(job.Errors) + 1))
}

// delay is the wait after the failure-th failure (1 for the first).
func (b backoff) delay(failure int) time.Duration {
	d := float64(b.base) * math.Pow(2, float64(failure-1))
	if d > float64(b.max) || math.IsInf(d, 0) {
		d = float64(b.max)
	}
	jitter := 0.9 + 0.2*rand.Float64()
	return time.Duration(d * jitter)
}

var _ river.ClientRetryPolicy = backoff{}
