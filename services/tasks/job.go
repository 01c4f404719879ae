package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/vigilhq/vigil/platform/jobs"
)

// Status of a job as users see it. River's states map onto it (see statusOf).
type Status int

const (
	StatusQueued Status = iota + 1
	StatusRunning
	StatusSucceeded
	StatusFailed
	StatusCancelled
	StatusDead
)

// Type of a user-visible job.
type Type int

const (
	TypeImport Type = iota + 1
	TypeReextract
	TypeRetentionPurge
)

// kindOfType is the River kind behind each user-visible job type. Internal kinds
// (webhook deliveries and their fan-out) are not listed: users see those through the
// webhook delivery log.
var kindOfType = map[Type]string{
	TypeImport:         jobs.KindBulkImport,
	TypeReextract:      jobs.KindReextract,
	TypeRetentionPurge: jobs.KindRetentionPurge,
}

func typeOfKind(kind string) (Type, bool) {
	for t, k := range kindOfType {
		if k == kind {
			return t, true
		}
	}
	return 0, false
}

// Metadata keys this service keeps in river_job.metadata.
const (
	metaProgress = "vigil_progress"
	// metaDead marks a job its worker gave up on (a permanent error): River cancels it,
	// we show it dead.
	metaDead = "vigil_dead"
)

// Progress of a job's current or last attempt.
type Progress struct {
	Done   int64 `json:"done"`
	Total  int64 `json:"total"`
	Failed int64 `json:"failed"`
	// ItemErrors are the first per-item problems ("row 7: no face found").
	ItemErrors []string `json:"item_errors,omitempty"`
	// Checkpoint is where a retried attempt resumes (items before it are finished), and
	// CheckpointFailed how many of those failed.
	Checkpoint       int64 `json:"checkpoint,omitempty"`
	CheckpointFailed int64 `json:"checkpoint_failed,omitempty"`
	// CheckpointToken is the page token a retried job that pages through a backend RPC
	// (re-extraction) resumes from, and Counts its tallies at the checkpoint.
	CheckpointToken string           `json:"checkpoint_token,omitempty"`
	Counts          map[string]int64 `json:"counts,omitempty"`
	// Summary is a one-line account of a finished job, shown after its description.
	Summary string `json:"summary,omitempty"`
}

type jobMetadata struct {
	Progress *Progress `json:"vigil_progress"`
	Dead     bool      `json:"vigil_dead"`
}

// AttemptError is one failed attempt.
type AttemptError struct {
	Attempt int
	At      time.Time
	Message string
}

// Job is the user's view of one River job.
type Job struct {
	ID          int64
	Type        Type
	Status      Status
	Progress    Progress
	Attempt     int
	MaxAttempts int
	Errors      []AttemptError
	CreatedAt   time.Time
	AttemptedAt *time.Time
	FinishedAt  *time.Time
	// NextAttemptAt is set for queued and failed jobs.
	NextAttemptAt *time.Time
	Description   string
	WorkspaceID   string
}

// workspaceArgs reads the workspace every Vigil job's args carry.
type workspaceArgs struct {
	WorkspaceID string `json:"workspace_id"`
	FileName    string `json:"file_name"`
	Format      string `json:"format"`
}

// jobFromRow converts a River row; ok is false for rows that are not user-visible jobs.
func jobFromRow(row *rivertype.JobRow) (Job, bool) {
	typ, ok := typeOfKind(row.Kind)
	if !ok {
		return Job{}, false
	}
	var args workspaceArgs
	if err := json.Unmarshal(row.EncodedArgs, &args); err != nil || args.WorkspaceID == "" {
		return Job{}, false
	}
	var meta jobMetadata
	_ = json.Unmarshal(row.Metadata, &meta) // a job that never reported has none

	j := Job{
		ID:          row.ID,
		Type:        typ,
		Status:      statusOf(row.State, len(row.Errors) > 0, meta.Dead),
		Attempt:     row.Attempt,
		MaxAttempts: row.MaxAttempts,
		CreatedAt:   row.CreatedAt,
		AttemptedAt: row.AttemptedAt,
		FinishedAt:  row.FinalizedAt,
		Description: describe(typ, args),
		WorkspaceID: args.WorkspaceID,
	}
	if meta.Progress != nil {
		j.Progress = *meta.Progress
		if j.Progress.Summary != "" {
			j.Description += ": " + j.Progress.Summary
		}
	}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, AttemptError{Attempt: e.Attempt, At: e.At, Message: e.Error})
	}
	if j.Status == StatusQueued || j.Status == StatusFailed {
		at := row.ScheduledAt
		j.NextAttemptAt = &at
	}
	return j, true
}

// statusOf maps River's state to ours. A job waiting after a failed attempt is failed
// (River keeps short back-offs "available" rather than "retryable"); a cancelled job is
// dead when its worker gave up on a permanent error (metadata flag). List's SQL
// predicates (statusPredicate) must agree.
func statusOf(state rivertype.JobState, hasErrors, dead bool) Status {
	switch state {
	case rivertype.JobStateAvailable, rivertype.JobStateScheduled:
		if hasErrors {
			return StatusFailed
		}
		return StatusQueued
	case rivertype.JobStateRunning:
		return StatusRunning
	case rivertype.JobStateCompleted:
		return StatusSucceeded
	case rivertype.JobStateRetryable:
		return StatusFailed
	case rivertype.JobStateCancelled:
		if dead {
			return StatusDead
		}
		return StatusCancelled
	case rivertype.JobStateDiscarded:
		return StatusDead
	default: // pending
		return StatusQueued
	}
}

func describe(t Type, args workspaceArgs) string {
	switch t {
	case TypeImport:
		name := args.FileName
		if name == "" {
			name = "upload"
		}
		return fmt.Sprintf("import persons from %s (%s)", name, args.Format)
	case TypeReextract:
		return "re-extract every template with the current model"
	case TypeRetentionPurge:
		return "purge events older than the retention period"
	}
	return ""
}
