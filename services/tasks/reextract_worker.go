package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/rpc"
)

// reextractWorker re-extracts every template of a workspace after a model change by
// paging through the backend's PersonService.ReextractTemplates (the templates, matcher
// entries and person versions are the backend's). Each page is idempotent on the backend
// (photos already of the current model are skipped), and the job checkpoints the next
// page token after each page, so a retried attempt resumes where the last one stopped.
type reextractWorker struct {
	river.WorkerDefaults[jobs.ReextractArgs]

	pool     *pgxpool.Pool
	persons  func() (backendv1.PersonServiceClient, error)
	pageSize int
	log      *slog.Logger
}

// Counts kept in a re-extraction's progress.
const (
	countReextracted = "reextracted"
	countSkipped     = "skipped"
)

// Timeout: none; a workspace of many thousand photos takes as long as it takes, and
// CancelJob stops it between pages.
func (w *reextractWorker) Timeout(*river.Job[jobs.ReextractArgs]) time.Duration { return -1 }

func (w *reextractWorker) Work(ctx context.Context, job *river.Job[jobs.ReextractArgs]) error {
	return settle(ctx, w.pool, job.ID, w.run(ctx, job))
}

func (w *reextractWorker) run(ctx context.Context, job *river.Job[jobs.ReextractArgs]) error {
	var prior jobMetadata
	_ = json.Unmarshal(job.Metadata, &prior)
	resume := Progress{}
	if p := prior.Progress; p != nil && p.CheckpointToken != "" {
		// Pages before the checkpoint are finished; their counts and messages carry over.
		resume = Progress{
			Done: p.Checkpoint, Failed: p.CheckpointFailed, Total: p.Total,
			Checkpoint: p.Checkpoint, CheckpointFailed: p.CheckpointFailed, CheckpointToken: p.CheckpointToken,
			ItemErrors: p.ItemErrors, Counts: p.Counts,
		}
	}
	prog := newProgress(w.pool, job.ID, resume)
	if err := prog.Flush(ctx); err != nil { // forget what an unfinished page reported
		return err
	}
	client, err := w.persons()
	if err != nil {
		return fmt.Errorf("%w: backend: %v", ErrUnavailable, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, rpc.MetadataWorkspace, job.Args.WorkspaceID)

	token, model := resume.CheckpointToken, ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := client.ReextractTemplates(ctx, &backendv1.ReextractTemplatesRequest{PageToken: token, PageSize: int32(w.pageSize)})
		if err != nil {
			return reextractErr(err)
		}
		if resp.GetModel() != "" {
			model = resp.GetModel()
		}
		if err := prog.PageDone(ctx, resp.GetTotal(), resp.GetReextracted()+resp.GetSkipped(), resp.GetFailures(),
			resp.GetNextPageToken(), map[string]int64{countReextracted: resp.GetReextracted(), countSkipped: resp.GetSkipped()}); err != nil {
			// The page is done on the backend; a retry would redo it harmlessly.
			return err
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	p := prog.Snapshot()
	summary := fmt.Sprintf("%d photos: %d re-extracted, %d already current, %d failed",
		p.Done, p.Counts[countReextracted], p.Counts[countSkipped], p.Failed)
	if model != "" {
		summary += "; model " + model
	}
	w.log.InfoContext(ctx, "templates re-extracted", "job_id", job.ID, "workspace_id", job.Args.WorkspaceID, "summary", summary)
	return prog.Finish(ctx, summary)
}

// reextractErr decides what a failed page means for the job: a backend that refuses the
// request for good (no such RPC in its version, a token it cannot read, no access) kills
// the job; anything else (unavailable backend, Image API or matcher) fails the attempt,
// which resumes at the checkpoint.
func reextractErr(err error) error {
	switch status.Code(err) {
	case codes.Unimplemented:
		return permanent(fmt.Errorf("the backend does not offer PersonService.ReextractTemplates (older version?): %w", err))
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
		return permanent(fmt.Errorf("re-extract templates: %w", err))
	}
	return fmt.Errorf("re-extract templates: %w", err)
}
