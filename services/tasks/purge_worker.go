package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/vigilhq/vigil/platform/jobs"
)

// purgeBatch is how many events one purge step deletes.
const purgeBatch = 500

// purgeWorker deletes a workspace's events older than its retention, and their images.
//
// It works directly on the backend's tables (workspaces.retention_days, events), which
// the backend's migrations own: the backend has no purge RPC, the events are plain rows
// with their object keys, and a set-based DELETE in batches is far cheaper than one RPC
// per event. Objects go first, rows after, so a crash in between leaves rows whose
// objects are gone (the next run deletes them) and never objects without a row.
type purgeWorker struct {
	river.WorkerDefaults[jobs.RetentionPurgeArgs]

	pool    *pgxpool.Pool
	objects ObjectStore
	log     *slog.Logger
	now     func() time.Time
}

func (w *purgeWorker) Timeout(*river.Job[jobs.RetentionPurgeArgs]) time.Duration { return -1 }

func (w *purgeWorker) Work(ctx context.Context, job *river.Job[jobs.RetentionPurgeArgs]) error {
	return settle(ctx, w.pool, job.ID, w.run(ctx, job))
}

func (w *purgeWorker) run(ctx context.Context, job *river.Job[jobs.RetentionPurgeArgs]) error {
	ws, err := uuid.Parse(job.Args.WorkspaceID)
	if err != nil {
		return permanent(fmt.Errorf("workspace id %q: %w", job.Args.WorkspaceID, err))
	}
	var days int
	err = w.pool.QueryRow(ctx, `SELECT retention_days FROM workspaces WHERE id = $1`, ws).Scan(&days)
	if errors.Is(err, pgx.ErrNoRows) {
		return permanent(fmt.Errorf("workspace %s: no such workspace", ws))
	}
	if err != nil {
		return fmt.Errorf("read retention of workspace %s: %w", ws, err)
	}
	prog := newProgress(w.pool, job.ID, Progress{})
	if days <= 0 {
		return prog.SetTotal(ctx, 0) // keeps events forever: nothing to do
	}
	cutoff := w.now().Add(-time.Duration(days) * 24 * time.Hour)

	var total int64
	if err := w.pool.QueryRow(ctx,
		`SELECT count(*) FROM events WHERE workspace_id = $1 AND event_time < $2`, ws, cutoff).Scan(&total); err != nil {
		return fmt.Errorf("count expired events: %w", err)
	}
	if err := prog.SetTotal(ctx, total); err != nil {
		return err
	}
	for {
		n, err := w.purgeStep(ctx, ws, cutoff)
		if err != nil {
			return err
		}
		if n == 0 {
			return prog.Flush(ctx)
		}
		if err := prog.Done(ctx, n, 0, "", 0, 0); err != nil {
			w.log.WarnContext(ctx, "purge progress not recorded", "job_id", job.ID, "err", err)
		}
	}
}

// purgeStep deletes the images, then the rows, of the oldest batch of expired events.
func (w *purgeWorker) purgeStep(ctx context.Context, ws uuid.UUID, cutoff time.Time) (int64, error) {
	rows, err := w.pool.Query(ctx, `
		SELECT id, face_object_key, frame_object_key FROM events
		WHERE workspace_id = $1 AND event_time < $2
		ORDER BY event_time LIMIT $3`, ws, cutoff, purgeBatch)
	if err != nil {
		return 0, fmt.Errorf("select expired events: %w", err)
	}
	var ids, keys []string
	for rows.Next() {
		var id, face, frame string
		if err := rows.Scan(&id, &face, &frame); err != nil {
			rows.Close()
			return 0, fmt.Errorf("select expired events: %w", err)
		}
		ids = append(ids, id)
		for _, k := range []string{face, frame} {
			if k != "" {
				keys = append(keys, k)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("select expired events: %w", err)
	}
	for _, k := range keys {
		if err := w.objects.Delete(ctx, k); err != nil {
			return 0, fmt.Errorf("%w: delete event image %s: %v", ErrUnavailable, k, err)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := w.pool.Exec(ctx, `DELETE FROM events WHERE workspace_id = $1 AND id = ANY($2)`, ws, ids)
	if err != nil {
		return 0, fmt.Errorf("delete expired events: %w", err)
	}
	return tag.RowsAffected(), nil
}
