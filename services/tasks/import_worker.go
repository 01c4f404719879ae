package tasks

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
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

// importWorker creates the persons of an upload through the backend's PersonService,
// several at once, reporting progress. It is safe to retry: each person and photo call
// carries a request id derived from the job and the item (the backend answers a repeated
// id with the first answer), and a retried attempt resumes after the items its
// predecessors finished (the checkpoint in the job's progress).
type importWorker struct {
	river.WorkerDefaults[jobs.BulkImportArgs]

	pool        *pgxpool.Pool
	objects     ObjectStore
	persons     func() (backendv1.PersonServiceClient, error)
	groups      func() (backendv1.GroupServiceClient, error)
	bucket      string
	parallelism int
	maxBytes    int64
	metrics     *metrics
	log         *slog.Logger
}

// Timeout: none; an import of many thousand photos takes as long as it takes, and
// CancelJob stops it.
func (w *importWorker) Timeout(*river.Job[jobs.BulkImportArgs]) time.Duration { return -1 }

func (w *importWorker) Work(ctx context.Context, job *river.Job[jobs.BulkImportArgs]) error {
	return settle(ctx, w.pool, job.ID, w.run(ctx, job))
}

func (w *importWorker) run(ctx context.Context, job *river.Job[jobs.BulkImportArgs]) error {
	a := job.Args
	items, cleanup, err := w.load(ctx, a)
	if err != nil {
		return err
	}
	defer cleanup()

	var prior jobMetadata
	_ = json.Unmarshal(job.Metadata, &prior)
	resume := Progress{}
	if prior.Progress != nil && prior.Progress.Checkpoint > 0 && prior.Progress.Checkpoint <= int64(len(items)) {
		// Items before the checkpoint are finished; their counts and messages carry over.
		resume = Progress{
			Done: prior.Progress.Checkpoint, Failed: prior.Progress.CheckpointFailed,
			Checkpoint: prior.Progress.Checkpoint, CheckpointFailed: prior.Progress.CheckpointFailed,
			ItemErrors: prior.Progress.ItemErrors,
		}
	}
	prog := newProgress(w.pool, job.ID, resume)
	if err := prog.SetTotal(ctx, int64(len(items))); err != nil {
		return err
	}
	client, err := w.persons()
	if err != nil {
		return fmt.Errorf("%w: backend: %v", ErrUnavailable, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, rpc.MetadataWorkspace, a.WorkspaceID)
	if err := w.checkGroups(ctx, a.GroupIDs); err != nil {
		return err
	}

	err = w.importAll(ctx, client, job.ID, a, items, int(resume.Checkpoint), prog)
	if ferr := prog.Flush(ctx); err == nil {
		err = ferr
	}
	return err
}

// checkGroups fails the job at once when a group every person should join does not
// exist, rather than failing every item for the same reason.
func (w *importWorker) checkGroups(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	client, err := w.groups()
	if err != nil {
		return fmt.Errorf("%w: backend: %v", ErrUnavailable, err)
	}
	for _, id := range ids {
		_, err := client.GetGroup(ctx, &backendv1.GetGroupRequest{GroupId: id})
		switch status.Code(err) {
		case codes.OK:
		case codes.NotFound, codes.InvalidArgument:
			return permanent(fmt.Errorf("group %q: no such group in the workspace", id))
		default:
			return fmt.Errorf("check group %q: %w", id, err)
		}
	}
	return nil
}

// importAll runs the items from start with bounded parallelism and moves the checkpoint
// over the finished prefix. The first job-level error (or cancellation) stops new items;
// those in flight finish or stop on the cancelled context.
func (w *importWorker) importAll(ctx context.Context, client backendv1.PersonServiceClient, jobID int64, a jobs.BulkImportArgs, items []importItem, start int, prog *progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		index   int
		itemErr string
		err     error
	}
	next := make(chan int)
	results := make(chan result)
	for range w.parallelism {
		go func() {
			for i := range next {
				msg, err := w.importOne(ctx, client, jobID, i, items[i], a.GroupIDs)
				results <- result{i, msg, err}
			}
		}()
	}
	defer close(next)

	// finished[i] is set when item i is done; failed[i] when it failed.
	finished := make([]bool, len(items))
	failed := make([]bool, len(items))
	checkpoint, checkpointFailed := start, prog.Snapshot().CheckpointFailed
	var firstErr error
	done := ctx.Done()
	dispatched, received := start, start
	for received < dispatched || (firstErr == nil && dispatched < len(items)) {
		var feed chan<- int // nil (never ready) once nothing more is to be started
		if firstErr == nil && dispatched < len(items) {
			feed = next
		}
		select {
		case feed <- dispatched:
			dispatched++
			continue
		case <-done:
			done = nil
			if firstErr == nil {
				firstErr = ctx.Err()
			}
			continue
		case r := <-results:
			received++
			if r.err != nil {
				if firstErr == nil {
					firstErr = r.err
					cancel()
				}
				continue
			}
			finished[r.index] = true
			var nFailed int64
			if r.itemErr != "" {
				failed[r.index] = true
				nFailed = 1
				w.metrics.importItems.WithLabelValues("failed").Inc()
			} else {
				w.metrics.importItems.WithLabelValues("imported").Inc()
			}
			for checkpoint < len(items) && finished[checkpoint] {
				if failed[checkpoint] {
					checkpointFailed++
				}
				checkpoint++
			}
			if err := prog.Done(ctx, 1-nFailed, nFailed, r.itemErr, int64(checkpoint), checkpointFailed); err != nil {
				w.log.WarnContext(ctx, "import progress not recorded", "job_id", jobID, "err", err)
			}
		}
	}
	return firstErr
}

// importOne creates one person and its photos. itemErr reports a problem of this item
// alone (bad data, no face); err a problem that fails the attempt (backend down, a
// license limit).
func (w *importWorker) importOne(ctx context.Context, client backendv1.PersonServiceClient, jobID int64, index int, it importItem, groups []string) (itemErr string, err error) {
	if it.Reject != "" {
		return it.Reject, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	person, created, err := w.createPerson(ctx, client, jobID, index, it, groups)
	if err != nil {
		return classify(it.Origin, err)
	}
	var problems []string
	for k, ph := range it.Photos {
		img, err := w.readPhoto(ctx, ph)
		if err != nil {
			if errors.Is(err, errPhotoUnreadable) {
				problems = append(problems, fmt.Sprintf("%s: %v", ph.Name, err))
				continue
			}
			return "", err
		}
		_, err = client.AddPhoto(ctx, &backendv1.AddPhotoRequest{
			PersonId:  person.GetId(),
			Image:     img,
			RequestId: fmt.Sprintf("import-%d-%d-photo-%d", jobID, index, k),
		})
		if err != nil {
			msg, jobErr := classify(ph.Name, err)
			if jobErr != nil {
				return "", jobErr
			}
			problems = append(problems, msg)
		}
	}
	if len(problems) == 0 {
		return "", nil
	}
	if created && len(problems) == len(it.Photos) {
		// Not one photo was usable: take back the person this item created, so a failed
		// item leaves nothing behind (a person without a face cannot be recognised).
		_, err := client.DeletePerson(ctx, &backendv1.DeletePersonRequest{
			PersonId: person.GetId(), RequestId: fmt.Sprintf("import-%d-%d-undo", jobID, index),
		})
		if err != nil && status.Code(err) != codes.NotFound {
			if _, jobErr := classify(it.Origin, err); jobErr != nil {
				return "", jobErr
			}
		}
	}
	return it.Origin + ": " + joinMax(problems, 3), nil
}

// createPerson creates the item's person (created), or finds the one that already has
// its external id (imported by an earlier job, or created by hand).
func (w *importWorker) createPerson(ctx context.Context, client backendv1.PersonServiceClient, jobID int64, index int, it importItem, groups []string) (*backendv1.Person, bool, error) {
	resp, err := client.CreatePerson(ctx, &backendv1.CreatePersonRequest{
		Person:    &backendv1.Person{ExternalId: it.ExternalID, Name: it.Name, GroupIds: groups},
		RequestId: fmt.Sprintf("import-%d-%d", jobID, index),
	})
	if err == nil {
		return resp.GetPerson(), true, nil
	}
	if status.Code(err) != codes.AlreadyExists {
		return nil, false, err
	}
	list, lerr := client.ListPersons(ctx, &backendv1.ListPersonsRequest{ExternalId: it.ExternalID, PageSize: 1})
	if lerr != nil {
		return nil, false, lerr
	}
	if len(list.GetPersons()) == 0 {
		return nil, false, err // erased between the two calls: report the conflict
	}
	return list.GetPersons()[0], false, nil
}

// classify sorts a backend error: bad input of the item is an item problem; a license
// limit or refusal fails the whole job for good; anything else (unavailable, time-out,
// internal) fails the attempt, to be retried.
func classify(origin string, err error) (itemErr string, jobErr error) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.OutOfRange:
		return origin + ": " + st.Message(), nil
	case codes.ResourceExhausted, codes.PermissionDenied, codes.Unauthenticated:
		return "", permanent(fmt.Errorf("%s: %s", origin, st.Message()))
	case codes.Canceled:
		return "", context.Canceled
	default:
		return "", fmt.Errorf("%s: %w", origin, err)
	}
}

// errPhotoUnreadable marks a photo the item cannot use (missing object, bad zip entry,
// too large), as opposed to an object store that is down.
var errPhotoUnreadable = errors.New("photo unreadable")

func (w *importWorker) readPhoto(ctx context.Context, ph photoSource) ([]byte, error) {
	var rc io.ReadCloser
	if ph.ZipEntry != nil {
		r, err := ph.ZipEntry.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPhotoUnreadable, err)
		}
		rc = r
	} else {
		r, err := w.objects.Get(ctx, ph.ObjectKey)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no such object", errPhotoUnreadable)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: object store: %v", ErrUnavailable, err)
		}
		rc = r
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPhotoBytes+1))
	if err != nil {
		if ph.ZipEntry != nil {
			return nil, fmt.Errorf("%w: %v", errPhotoUnreadable, err)
		}
		return nil, fmt.Errorf("%w: object store: %v", ErrUnavailable, err)
	}
	if len(b) > maxPhotoBytes {
		return nil, fmt.Errorf("%w: larger than %d MiB", errPhotoUnreadable, maxPhotoBytes>>20)
	}
	return b, nil
}

// load reads the upload's items. A zip is spooled to a temporary file (random access);
// cleanup removes it.
func (w *importWorker) load(ctx context.Context, a jobs.BulkImportArgs) ([]importItem, func(), error) {
	noop := func() {}
	rc, err := w.objects.Get(ctx, a.ObjectKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noop, permanent(fmt.Errorf("upload %s: no such object", a.ObjectKey))
	}
	if err != nil {
		return nil, noop, fmt.Errorf("%w: read upload: %v", ErrUnavailable, err)
	}
	defer rc.Close()
	limited := io.LimitReader(rc, w.maxBytes+1)

	switch a.Format {
	case jobs.ImportFormatCSV:
		b, err := io.ReadAll(limited)
		if err != nil {
			return nil, noop, fmt.Errorf("%w: read upload: %v", ErrUnavailable, err)
		}
		if int64(len(b)) > w.maxBytes {
			return nil, noop, permanent(fmt.Errorf("upload larger than %d bytes", w.maxBytes))
		}
		items, err := csvItems(bytes.NewReader(b), a.WorkspaceID, w.bucket)
		if err != nil {
			return nil, noop, permanent(err)
		}
		return items, noop, nil
	case jobs.ImportFormatZIP:
		f, err := os.CreateTemp("", "vigil-import-*.zip")
		if err != nil {
			return nil, noop, fmt.Errorf("spool upload: %w", err)
		}
		cleanup := func() { f.Close(); os.Remove(f.Name()) }
		n, err := io.Copy(f, limited)
		if err != nil {
			cleanup()
			return nil, noop, fmt.Errorf("%w: read upload: %v", ErrUnavailable, err)
		}
		if n > w.maxBytes {
			cleanup()
			return nil, noop, permanent(fmt.Errorf("upload larger than %d bytes", w.maxBytes))
		}
		zr, err := zip.NewReader(f, n)
		if err != nil {
			cleanup()
			return nil, noop, permanent(fmt.Errorf("upload is not a zip archive: %w", err))
		}
		return zipItems(zr), cleanup, nil
	default:
		return nil, noop, permanent(fmt.Errorf("unknown import format %q", a.Format))
	}
}

func joinMax(msgs []string, n int) string {
	if len(msgs) <= n {
		return join(msgs)
	}
	return join(msgs[:n]) + fmt.Sprintf("; and %d more", len(msgs)-n)
}

func join(msgs []string) string {
	var b bytes.Buffer
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(m)
	}
	return b.String()
}
