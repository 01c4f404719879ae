package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Runtime is the task queue of one process: the River client with every worker, the
// Manager behind TaskService and the webhook Dispatcher.
type Runtime struct {
	Queue      *Queue
	Manager    *Manager
	Dispatcher *Dispatcher

	pool    *pgxpool.Pool
	migrate bool
	log     *slog.Logger
}

// Deps are what the task queue needs from its process.
type Deps struct {
	Pool    *pgxpool.Pool
	Config  Config
	Objects ObjectStore
	// Bucket is the object store's bucket, to read s3:// and http(s):// import URLs.
	Bucket string
	Peers  rpc.Peers
	// Migrate applies River's migrations on Start.
	Migrate    bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// extraWorkers lets in-package tests add job kinds of their own.
	extraWorkers func(*river.Workers)
}

// backendComponent is the peer name of the backend.
const backendComponent = "backend"

// NewRuntime wires the workers and the River client; Start runs them.
func NewRuntime(d Deps) (*Runtime, error) {
	m, err := newMetrics(d.Registerer)
	if err != nil {
		return nil, fmt.Errorf("tasks metrics: %w", err)
	}
	if err := d.Registerer.Register(newJobsCollector(d.Pool, d.Logger)); err != nil {
		return nil, fmt.Errorf("tasks metrics: %w", err)
	}
	backend := func() (backendClients, error) {
		conn, err := d.Peers.Conn(backendComponent)
		if err != nil {
			return backendClients{}, err
		}
		return backendClients{
			persons:  backendv1.NewPersonServiceClient(conn),
			groups:   backendv1.NewGroupServiceClient(conn),
			webhooks: backendv1.NewWebhookServiceClient(conn),
		}, nil
	}
	rt := &Runtime{pool: d.Pool, migrate: d.Migrate, log: d.Logger}

	workers := river.NewWorkers()
	if err := errors.Join(
		river.AddWorkerSafely(workers, &importWorker{
			pool: d.Pool, objects: d.Objects, bucket: d.Bucket,
			persons: func() (backendv1.PersonServiceClient, error) {
				b, err := backend()
				return b.persons, err
			},
			groups: func() (backendv1.GroupServiceClient, error) {
				b, err := backend()
				return b.groups, err
			},
			parallelism: d.Config.ImportParallelism, maxBytes: d.Config.MaxImportBytes,
			metrics: m, log: d.Logger,
		}),
		river.AddWorkerSafely(workers, &reextractWorker{
			pool: d.Pool, pageSize: d.Config.ReextractPageSize, log: d.Logger,
			persons: func() (backendv1.PersonServiceClient, error) {
				b, err := backend()
				return b.persons, err
			},
		}),
		river.AddWorkerSafely(workers, &purgeWorker{pool: d.Pool, objects: d.Objects, log: d.Logger, now: time.Now}),
		river.AddWorkerSafely(workers, &retentionSweepWorker{pool: d.Pool, queue: func() *Queue { return rt.Queue }}),
		river.AddWorkerSafely(workers, &webhookBatchWorker{pool: d.Pool}),
		river.AddWorkerSafely(workers, newWebhookWorker(d.Pool, d.Config.WebhookTimeout, func() (deliveryRecorder, error) {
			b, err := backend()
			return b.webhooks, err
		}, m, d.Logger)),
	); err != nil {
		return nil, fmt.Errorf("tasks workers: %w", err)
	}
	if d.extraWorkers != nil {
		d.extraWorkers(workers)
	}
	q, err := newQueue(d.Pool, d.Config, workers, errorLogger{d.Logger}, d.Logger)
	if err != nil {
		return nil, fmt.Errorf("tasks queue: %w", err)
	}
	q.PeriodicJobs().Add(retentionSweep(d.Config.RetentionSweepInterval))
	rt.Queue = q
	rt.Manager = NewManager(d.Pool, q, d.Objects, d.Config)
	rt.Dispatcher = &Dispatcher{pool: d.Pool, metrics: m, linger: d.Config.WebhookBatchLinger,
		queue: func() *Queue { return rt.Queue }, matcher: func() (webhookMatcher, error) {
			b, err := backend()
			return b.webhooks, err
		}}
	return rt, nil
}

type backendClients struct {
	persons  backendv1.PersonServiceClient
	groups   backendv1.GroupServiceClient
	webhooks backendv1.WebhookServiceClient
}

// Start applies River's migrations (when asked) and starts working jobs. Jobs run under
// a context detached from ctx, which only bounds the start itself.
func (r *Runtime) Start(ctx context.Context) error {
	if r.migrate {
		if err := jobs.Migrate(ctx, r.pool); err != nil {
			return err
		}
	}
	if err := r.Queue.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start task queue: %w", err)
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones until ctx ends, then cancels
// them (a cancelled attempt is retried later, resuming where it stopped).
func (r *Runtime) Stop(ctx context.Context) error {
	err := r.Queue.Stop(ctx)
	if err == nil {
		return nil
	}
	r.log.Warn("task queue: jobs still running at stop time; cancelling them", "err", err)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return r.Queue.StopAndCancel(cctx)
}

// errorLogger logs failed attempts and panics of workers once, with the job's identity.
type errorLogger struct{ log *slog.Logger }

func (e errorLogger) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	e.log.WarnContext(ctx, "job attempt failed", "job_id", job.ID, "kind", job.Kind, "attempt", job.Attempt,
		"max_attempts", job.MaxAttempts, "err", err)
	return nil
}

func (e errorLogger) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	e.log.ErrorContext(ctx, "job attempt panicked", "job_id", job.ID, "kind", job.Kind, "attempt", job.Attempt,
		"panic", fmt.Sprint(panicVal), "trace", trace)
	return nil
}
