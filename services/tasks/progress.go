package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// maxItemErrors bounds the per-item problems kept on a job.
const maxItemErrors = 100

// progressInterval bounds how often a running job writes its progress.
const progressInterval = 250 * time.Millisecond

// progress records a running job's progress in its River row (metadata
// "vigil_progress"), so GetJob shows it while the job runs and after it ends. Writes are
// throttled; Flush writes the final state. Safe for concurrent use.
type progress struct {
	pool  *pgxpool.Pool
	jobID int64

	mu      sync.Mutex
	p       Progress
	written time.Time
}

func newProgress(pool *pgxpool.Pool, jobID int64, resumeFrom Progress) *progress {
	return &progress{pool: pool, jobID: jobID, p: resumeFrom}
}

// SetTotal records how many items the job has.
func (r *progress) SetTotal(ctx context.Context, total int64) error {
	r.mu.Lock()
	r.p.Total = total
	r.mu.Unlock()
	return r.Flush(ctx)
}

// Done counts items finished (ok) or failed (itemErr non-empty), moves the checkpoint to
// checkpoint, and writes if the last write is old enough.
func (r *progress) Done(ctx context.Context, ok, failed int64, itemErr string, checkpoint, checkpointFailed int64) error {
	r.mu.Lock()
	r.p.Done += ok + failed
	r.p.Failed += failed
	if itemErr != "" && len(r.p.ItemErrors) < maxItemErrors && !slices.Contains(r.p.ItemErrors, itemErr) {
		// A retried attempt may redo an item an earlier one reported: say it once.
		r.p.ItemErrors = append(r.p.ItemErrors, itemErr)
	}
	if checkpoint > r.p.Checkpoint {
		r.p.Checkpoint, r.p.CheckpointFailed = checkpoint, checkpointFailed
	}
	due := time.Since(r.written) >= progressInterval
	r.mu.Unlock()
	if !due {
		return nil
	}
	return r.Flush(ctx)
}

// PageDone counts a page of items (ok finished, itemErrs failed), adds counts, sets the
// total the backend reported, and moves the checkpoint past the page: a retried attempt
// resumes at next. It writes at once, since a checkpoint that is not stored is lost.
func (r *progress) PageDone(ctx context.Context, total, ok int64, itemErrs []string, next string, counts map[string]int64) error {
	r.mu.Lock()
	failed := int64(len(itemErrs))
	r.p.Total = total
	r.p.Done += ok + failed
	r.p.Failed += failed
	for _, e := range itemErrs {
		if len(r.p.ItemErrors) < maxItemErrors && !slices.Contains(r.p.ItemErrors, e) {
			r.p.ItemErrors = append(r.p.ItemErrors, e)
		}
	}
	r.p.Checkpoint, r.p.CheckpointFailed, r.p.CheckpointToken = r.p.Done, r.p.Failed, next
	if r.p.Counts == nil {
		r.p.Counts = map[string]int64{}
	}
	for k, v := range counts {
		r.p.Counts[k] += v
	}
	r.mu.Unlock()
	return r.Flush(ctx)
}

// Finish records the summary of a finished job and writes it.
func (r *progress) Finish(ctx context.Context, summary string) error {
	r.mu.Lock()
	r.p.Summary = summary
	r.mu.Unlock()
	return r.Flush(ctx)
}

// Snapshot returns the progress so far.
func (r *progress) Snapshot() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.p
	p.ItemErrors = append([]string(nil), r.p.ItemErrors...)
	p.Counts = maps.Clone(r.p.Counts)
	return p
}

// Flush writes the progress now.
func (r *progress) Flush(ctx context.Context) error {
	r.mu.Lock()
	b, err := json.Marshal(r.p)
	r.written = time.Now()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	// WithoutCancel: the final flush of a cancelled job must still land.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err = r.pool.Exec(ctx,
		`UPDATE river_job SET metadata = jsonb_set(metadata, '{`+metaProgress+`}', $2::jsonb) WHERE id = $1`,
		r.jobID, b)
	if err != nil {
		return fmt.Errorf("record progress of job %d: %w", r.jobID, err)
	}
	return nil
}
