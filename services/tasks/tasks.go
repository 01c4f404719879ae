package tasks

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vigilhq/vigil/platform/jobs"
)

// Manager is the domain side of TaskService: it creates, reads, cancels and retries the
// jobs of one workspace at a time. It knows nothing of gRPC.
type Manager struct {
	pool    *pgxpool.Pool
	queue   *Queue
	objects ObjectStore
	cfg     Config
}

// NewManager returns a Manager over the River client queue.
func NewManager(pool *pgxpool.Pool, queue *Queue, objects ObjectStore, cfg Config) *Manager {
	return &Manager{pool: pool, queue: queue, objects: objects, cfg: cfg}
}

// ImportRequest is an import upload: Content, or the key of an object already stored.
type ImportRequest struct {
	Format    string // jobs.ImportFormatZIP or jobs.ImportFormatCSV
	Content   []byte
	ObjectKey string
	FileName  string
	GroupIDs  []string
}

// WorkspacePrefix is the object-store prefix of a workspace's objects. Imports read only
// objects under it, so no workspace can import another's photos by naming their keys.
func WorkspacePrefix(workspaceID string) string { return workspaceID + "/" }

// CreateImport stores the upload (if given) and queues a bulk import.
func (m *Manager) CreateImport(ctx context.Context, ws string, req ImportRequest) (Job, error) {
	if ws == "" {
		return Job{}, ErrNoWorkspace
	}
	var contentType string
	switch req.Format {
	case jobs.ImportFormatZIP:
		contentType = "application/zip"
	case jobs.ImportFormatCSV:
		contentType = "text/csv"
	default:
		return Job{}, fmt.Errorf("%w: format: must be zip or csv", ErrInvalid)
	}
	if len(req.FileName) > 255 {
		return Job{}, fmt.Errorf("%w: file_name: at most 255 bytes", ErrInvalid)
	}
	for i, g := range req.GroupIDs {
		if g == "" || len(g) > 100 {
			return Job{}, fmt.Errorf("%w: group_ids[%d]: 1..100 characters", ErrInvalid, i)
		}
	}
	key := req.ObjectKey
	switch {
	case len(req.Content) > 0 && key != "":
		return Job{}, fmt.Errorf("%w: content, object_key: give one", ErrInvalid)
	case len(req.Content) > 0:
		if int64(len(req.Content)) > m.cfg.MaxImportBytes {
			return Job{}, fmt.Errorf("%w: content: %d bytes, at most %d", ErrInvalid, len(req.Content), m.cfg.MaxImportBytes)
		}
		if err := checkUpload(req.Format, req.Content); err != nil {
			return Job{}, err
		}
		key = WorkspacePrefix(ws) + "imports/" + uuid.NewString() + "." + req.Format
		if err := m.objects.Put(ctx, key, bytes.NewReader(req.Content), int64(len(req.Content)), contentType); err != nil {
			return Job{}, fmt.Errorf("%w: store upload: %v", ErrUnavailable, err)
		}
	case key != "":
		if !strings.HasPrefix(key, WorkspacePrefix(ws)) || strings.Contains(key, "..") {
			return Job{}, fmt.Errorf("%w: object_key: must lie under %q", ErrInvalid, WorkspacePrefix(ws))
		}
	default:
		return Job{}, fmt.Errorf("%w: content or object_key: required", ErrInvalid)
	}
	return m.insert(ctx, jobs.BulkImportArgs{
		WorkspaceID: ws, Format: req.Format, ObjectKey: key, FileName: req.FileName, GroupIDs: req.GroupIDs,
	})
}

// checkUpload refuses an upload the worker could not read, so the caller learns at once.
func checkUpload(format string, content []byte) error {
	switch format {
	case jobs.ImportFormatZIP:
		if _, err := zip.NewReader(bytes.NewReader(content), int64(len(content))); err != nil {
			return fmt.Errorf("%w: content: not a zip archive: %v", ErrInvalid, err)
		}
	case jobs.ImportFormatCSV:
		if _, err := newCSVRows(bytes.NewReader(content)); err != nil {
			return fmt.Errorf("%w: content: %v", ErrInvalid, err)
		}
	}
	return nil
}

// CreateReextract queues re-extraction of every template of the workspace with the
// current model (after a model change); the work is the backend's ReextractTemplates,
// page by page. One at a time per workspace: asked again while one is queued, running
// or waiting for a retry, it returns that job (a second would only redo its work).
func (m *Manager) CreateReextract(ctx context.Context, ws string) (Job, error) {
	if ws == "" {
		return Job{}, ErrNoWorkspace
	}
	return m.insertWith(ctx, jobs.ReextractArgs{WorkspaceID: ws}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		},
	}})
}

// CreateRetentionPurge queues a retention purge of the workspace.
func (m *Manager) CreateRetentionPurge(ctx context.Context, ws string) (Job, error) {
	if ws == "" {
		return Job{}, ErrNoWorkspace
	}
	return m.insert(ctx, jobs.RetentionPurgeArgs{WorkspaceID: ws})
}

func (m *Manager) insert(ctx context.Context, args jobs.Args) (Job, error) {
	return m.insertWith(ctx, args, nil)
}

// insertWith is insert with options over the kind's defaults (nil: none).
func (m *Manager) insertWith(ctx context.Context, args jobs.Args, opts *river.InsertOpts) (Job, error) {
	res, err := m.queue.Insert(ctx, args, opts)
	if err != nil {
		return Job{}, fmt.Errorf("queue %s: %w", args.Kind(), err)
	}
	j, ok := jobFromRow(res.Job)
	if !ok {
		return Job{}, fmt.Errorf("queue %s: inserted job %d is not a workspace job", args.Kind(), res.Job.ID)
	}
	return j, nil
}

// ParseJobID parses the opaque job id of the API.
func ParseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: job_id: not a job id", ErrInvalid)
	}
	return id, nil
}

// Get returns job id of workspace ws.
func (m *Manager) Get(ctx context.Context, ws string, id int64) (Job, error) {
	if ws == "" {
		return Job{}, ErrNoWorkspace
	}
	row, err := m.queue.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	j, ok := jobFromRow(row)
	if !ok || j.WorkspaceID != ws {
		// Another workspace's job, or an internal one: indistinguishable from none.
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return j, nil
}

// ListFilter narrows List; empty slices mean no filter.
type ListFilter struct {
	Statuses  []Status
	Types     []Type
	PageSize  int
	PageToken string
}

// statusPredicate is the SQL that selects the rows shown as each status (constants only).
var statusPredicate = map[Status]string{
	StatusQueued:    "(state = 'pending' OR (state IN ('available', 'scheduled') AND coalesce(cardinality(errors), 0) = 0))",
	StatusRunning:   "state = 'running'",
	StatusSucceeded: "state = 'completed'",
	StatusFailed:    "(state = 'retryable' OR (state IN ('available', 'scheduled') AND cardinality(errors) > 0))",
	StatusCancelled: "(state = 'cancelled' AND NOT metadata @> '{\"" + metaDead + "\": true}')",
	StatusDead:      "(state = 'discarded' OR (state = 'cancelled' AND metadata @> '{\"" + metaDead + "\": true}'))",
}

// List returns a page of the workspace's jobs, newest first, and the next page's token.
func (m *Manager) List(ctx context.Context, ws string, f ListFilter) ([]Job, string, error) {
	if ws == "" {
		return nil, "", ErrNoWorkspace
	}
	size := f.PageSize
	switch {
	case size < 0 || size > 500:
		return nil, "", fmt.Errorf("%w: page_size: 0..500", ErrInvalid)
	case size == 0:
		size = 50
	}
	kinds := make([]string, 0, len(kindOfType))
	if len(f.Types) == 0 {
		for _, k := range kindOfType {
			kinds = append(kinds, k)
		}
	}
	for _, t := range f.Types {
		k, ok := kindOfType[t]
		if !ok {
			return nil, "", fmt.Errorf("%w: types: unknown job type %d", ErrInvalid, t)
		}
		kinds = append(kinds, k)
	}
	wsFilter, err := json.Marshal(map[string]string{"workspace_id": ws})
	if err != nil {
		return nil, "", err
	}
	params := river.NewJobListParams().
		Kinds(kinds...).
		Where("args @> @workspace::jsonb", river.NamedArgs{"workspace": string(wsFilter)}).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).
		First(size + 1)
	if len(f.Statuses) > 0 {
		preds := make([]string, 0, len(f.Statuses))
		for _, s := range f.Statuses {
			p, ok := statusPredicate[s]
			if !ok {
				return nil, "", fmt.Errorf("%w: statuses: unknown status %d", ErrInvalid, s)
			}
			preds = append(preds, p)
		}
		params = params.Where("(" + strings.Join(preds, " OR ") + ")")
	}
	if f.PageToken != "" {
		before, err := decodePageToken(f.PageToken)
		if err != nil {
			return nil, "", err
		}
		params = params.Where("id < @before", river.NamedArgs{"before": before})
	}
	res, err := m.queue.JobList(ctx, params)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	rows := res.Jobs
	next := ""
	if len(rows) > size {
		rows = rows[:size]
		next = encodePageToken(rows[size-1].ID)
	}
	out := make([]Job, 0, len(rows))
	for _, r := range rows {
		if j, ok := jobFromRow(r); ok {
			out = append(out, j)
		}
	}
	return out, next, nil
}

// Page tokens are opaque to clients: the id the next page starts below.
func encodePageToken(beforeID int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("j" + strconv.FormatInt(beforeID, 10)))
}

func decodePageToken(tok string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil && len(b) > 1 && b[0] == 'j' {
		if id, err := strconv.ParseInt(string(b[1:]), 10, 64); err == nil && id > 0 {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: page_token: not a token of this list", ErrInvalid)
}

// Cancel cancels a queued, failed or running job of ws. A running job's context is
// cancelled; it stops at its next checkpoint.
func (m *Manager) Cancel(ctx context.Context, ws string, id int64) (Job, error) {
	j, err := m.Get(ctx, ws, id)
	if err != nil {
		return Job{}, err
	}
	switch j.Status {
	case StatusSucceeded, StatusCancelled, StatusDead:
		return Job{}, fmt.Errorf("%w: job %d has finished", ErrWrongState, id)
	}
	row, err := m.queue.JobCancel(ctx, id)
	if err != nil {
		return Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	j, _ = jobFromRow(row)
	return j, nil
}

// Retry runs a failed, dead or cancelled job of ws again now. An import resumes after
// the items its earlier attempts finished.
func (m *Manager) Retry(ctx context.Context, ws string, id int64) (Job, error) {
	j, err := m.Get(ctx, ws, id)
	if err != nil {
		return Job{}, err
	}
	switch j.Status {
	case StatusFailed, StatusDead, StatusCancelled:
	default:
		return Job{}, fmt.Errorf("%w: only failed, dead or cancelled jobs can be retried", ErrWrongState)
	}
	var row *rivertype.JobRow
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		// The dead flag belongs to the finished attempt; the new one starts clean.
		if _, err := tx.Exec(ctx, `UPDATE river_job SET metadata = metadata - '`+metaDead+`' WHERE id = $1`, id); err != nil {
			return err
		}
		var err error
		row, err = m.queue.JobRetryTx(ctx, tx, id)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("retry job %d: %w", id, err)
	}
	j, _ = jobFromRow(row)
	return j, nil
}

func formatJobID(id int64) string { return strconv.FormatInt(id, 10) }
