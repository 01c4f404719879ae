package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vigilhq/vigil/platform/jobs"
)

// kindRetentionSweep is the periodic job that queues a retention purge for every
// workspace with a retention period. Internal: no user sees or queues it.
const kindRetentionSweep = "vigil.retention_sweep"

type retentionSweepArgs struct{}

func (retentionSweepArgs) Kind() string { return kindRetentionSweep }

// retentionSweepWorker queues one purge per workspace that keeps events for a limited
// time, unless one is already waiting or running for it.
type retentionSweepWorker struct {
	river.WorkerDefaults[retentionSweepArgs]
	pool  *pgxpool.Pool
	queue func() *Queue
}

func (w *retentionSweepWorker) Work(ctx context.Context, _ *river.Job[retentionSweepArgs]) error {
	// Batched webhook events only guard against replays of recent notifications.
	if _, err := w.pool.Exec(ctx, `DELETE FROM tasks_webhook_pending
		WHERE delivery_job_id IS NOT NULL AND create_time < now() - interval '7 days'`); err != nil {
		return fmt.Errorf("forget old batched webhook events: %w", err)
	}
	rows, err := w.pool.Query(ctx, `SELECT id::text FROM workspaces WHERE retention_days > 0 ORDER BY id`)
	if err != nil {
		return fmt.Errorf("list workspaces with retention: %w", err)
	}
	var params []river.InsertManyParams
	for rows.Next() {
		var ws string
		if err := rows.Scan(&ws); err != nil {
			rows.Close()
			return err
		}
		params = append(params, river.InsertManyParams{
			Args: jobs.RetentionPurgeArgs{WorkspaceID: ws},
			InsertOpts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{
				ByArgs: true,
				ByState: []rivertype.JobState{
					rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
					rivertype.JobStateRunning, rivertype.JobStateScheduled,
				},
			}},
		})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(params) == 0 {
		return nil
	}
	if _, err := w.queue().InsertMany(ctx, params); err != nil {
		return fmt.Errorf("queue retention purges: %w", err)
	}
	return nil
}

// retentionSweep is the periodic schedule of the sweep; River runs periodic jobs on
// the elected leader only, so one process in a deployment sweeps.
func retentionSweep(every time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return retentionSweepArgs{}, nil },
		&river.PeriodicJobOpts{ID: kindRetentionSweep})
}
