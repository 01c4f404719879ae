package tasks

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/jobs"
)

const (
	wait = 10 * time.Second
	tick = 20 * time.Millisecond
)

func (e *env) insert(t *testing.T, args stepsArgs, opts *river.InsertOpts) string {
	t.Helper()
	res, err := e.rt.Queue.Insert(context.Background(), args, opts)
	require.NoError(t, err)
	return formatJobID(res.Job.ID)
}

func (e *env) get(t *testing.T, ws, id string) *tasksv1.Job {
	t.Helper()
	resp, err := e.client.GetJob(as(ws), &tasksv1.GetJobRequest{JobId: id})
	require.NoError(t, err)
	return resp.GetJob()
}

// eventually waits until the job satisfies cond and returns it.
func (e *env) eventually(t *testing.T, ws, id string, what string, cond func(*tasksv1.Job) bool) *tasksv1.Job {
	t.Helper()
	var last *tasksv1.Job
	require.Eventually(t, func() bool {
		last = e.get(t, ws, id)
		return cond(last)
	}, wait, tick, "job %s never became %s; last: %v", id, what, last)
	return last
}

func hasStatus(s tasksv1.JobStatus) func(*tasksv1.Job) bool {
	return func(j *tasksv1.Job) bool { return j.GetStatus() == s }
}

func TestJobLifecycleReportsProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noStart: true})
	id := e.insert(t, stepsArgs{WorkspaceID: "ws1", Steps: 3, Gate: t.Name()}, nil)

	j := e.get(t, "ws1", id)
	require.Equal(t, tasksv1.JobStatus_JOB_STATUS_QUEUED, j.GetStatus())
	require.Zero(t, j.GetAttempt())
	require.NotNil(t, j.GetNextAttemptTime())
	require.Nil(t, j.GetAttemptTime())

	e.start(t)
	j = e.eventually(t, "ws1", id, "running with a total", func(j *tasksv1.Job) bool {
		return j.GetStatus() == tasksv1.JobStatus_JOB_STATUS_RUNNING && j.GetProgress().GetTotal() == 3
	})
	require.Equal(t, int32(1), j.GetAttempt())
	require.NotNil(t, j.GetAttemptTime())
	require.Zero(t, j.GetProgress().GetDone())

	for step := int64(1); step <= 3; step++ {
		gate(t.Name()) <- struct{}{}
		if step < 3 {
			e.eventually(t, "ws1", id, "further along", func(j *tasksv1.Job) bool {
				return j.GetProgress().GetDone() == step && j.GetStatus() == tasksv1.JobStatus_JOB_STATUS_RUNNING
			})
		}
	}
	j = e.eventually(t, "ws1", id, "succeeded", hasStatus(tasksv1.JobStatus_JOB_STATUS_SUCCEEDED))
	require.Equal(t, int64(3), j.GetProgress().GetDone())
	require.Equal(t, int64(3), j.GetProgress().GetTotal())
	require.NotNil(t, j.GetFinishTime())
	require.Nil(t, j.GetNextAttemptTime())
	require.Empty(t, j.GetErrors())

	// A succeeded job can be neither cancelled nor retried.
	_, err := e.client.CancelJob(as("ws1"), &tasksv1.CancelJobRequest{JobId: id})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	_, err = e.client.RetryJob(as("ws1"), &tasksv1.RetryJobRequest{JobId: id})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
}

func TestFailedAttemptIsRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RetryBase, cfg.RetryMax = 300*time.Millisecond, 300*time.Millisecond
	e := newEnv(t, envOptions{config: &cfg})
	id := e.insert(t, stepsArgs{WorkspaceID: "ws1", Steps: 1, FailAttempts: 2}, nil)

	// Between attempts the job is failed, with the error and when it runs next.
	j := e.eventually(t, "ws1", id, "failed once", func(j *tasksv1.Job) bool {
		return j.GetStatus() == tasksv1.JobStatus_JOB_STATUS_FAILED && len(j.GetErrors()) == 1
	})
	require.Contains(t, j.GetErrors()[0].GetMessage(), "attempt 1 fails on purpose")
	require.Equal(t, int32(1), j.GetErrors()[0].GetAttempt())
	require.NotNil(t, j.GetNextAttemptTime())
	require.True(t, j.GetNextAttemptTime().AsTime().After(j.GetErrors()[0].GetTime().AsTime()),
		"the retry waits for the back-off")

	j = e.eventually(t, "ws1", id, "succeeded", hasStatus(tasksv1.JobStatus_JOB_STATUS_SUCCEEDED))
	require.Equal(t, int32(3), j.GetAttempt())
	require.Len(t, j.GetErrors(), 2)
	// Exponential: the second wait is about twice the first (capped here at 300ms, so
	// equal); measured from each failure to the next attempt's start.
	require.Equal(t, int64(1), j.GetProgress().GetDone())
}

func TestExhaustedAttemptsAreDeadAndCanBeRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.insert(t, stepsArgs{WorkspaceID: "ws1", Steps: 1, FailAttempts: 100}, &river.InsertOpts{MaxAttempts: 3})

	j := e.eventually(t, "ws1", id, "dead", hasStatus(tasksv1.JobStatus_JOB_STATUS_DEAD))
	require.Equal(t, int32(3), j.GetAttempt())
	require.Equal(t, int32(3), j.GetMaxAttempts())
	require.Len(t, j.GetErrors(), 3)
	require.NotNil(t, j.GetFinishTime())
	require.Equal(t, 1.0, jobsGauge(t, e, kindSteps, "discarded"), "the dead letter shows in the metrics")

	// The dead letter is listable by status.
	list, err := e.client.ListJobs(as("ws1"), &tasksv1.ListJobsRequest{Statuses: []tasksv1.JobStatus{tasksv1.JobStatus_JOB_STATUS_DEAD}})
	require.NoError(t, err)
	require.Len(t, list.GetJobs(), 1)
	require.Equal(t, id, list.GetJobs()[0].GetJobId())

	// Retrying a dead job gives it one more attempt.
	resp, err := e.client.RetryJob(as("ws1"), &tasksv1.RetryJobRequest{JobId: id})
	require.NoError(t, err)
	require.NotEqual(t, tasksv1.JobStatus_JOB_STATUS_DEAD, resp.GetJob().GetStatus())
	j = e.eventually(t, "ws1", id, "dead again", func(j *tasksv1.Job) bool {
		return j.GetStatus() == tasksv1.JobStatus_JOB_STATUS_DEAD && j.GetAttempt() == 4
	})
	require.Len(t, j.GetErrors(), 4)
}

func TestPermanentErrorGoesStraightToDead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.insert(t, stepsArgs{WorkspaceID: "ws1", Permanent: true}, nil)
	j := e.eventually(t, "ws1", id, "dead", hasStatus(tasksv1.JobStatus_JOB_STATUS_DEAD))
	require.Equal(t, int32(1), j.GetAttempt())
	require.Len(t, j.GetErrors(), 1)
	require.Contains(t, j.GetErrors()[0].GetMessage(), "this cannot work")

	// Retried, it runs again (and fails the same way): the dead flag does not stick.
	_, err := e.client.RetryJob(as("ws1"), &tasksv1.RetryJobRequest{JobId: id})
	require.NoError(t, err)
	e.eventually(t, "ws1", id, "dead after a second attempt", func(j *tasksv1.Job) bool {
		return j.GetStatus() == tasksv1.JobStatus_JOB_STATUS_DEAD && j.GetAttempt() == 2
	})
}

func TestCancelRunningAndQueuedJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})

	running := e.insert(t, stepsArgs{WorkspaceID: "ws1", Block: true}, nil)
	e.eventually(t, "ws1", running, "running", hasStatus(tasksv1.JobStatus_JOB_STATUS_RUNNING))
	_, err := e.client.CancelJob(as("ws1"), &tasksv1.CancelJobRequest{JobId: running})
	require.NoError(t, err)
	j := e.eventually(t, "ws1", running, "cancelled", hasStatus(tasksv1.JobStatus_JOB_STATUS_CANCELLED))
	require.NotNil(t, j.GetFinishTime())

	// Cancelling twice is a state error.
	_, err = e.client.CancelJob(as("ws1"), &tasksv1.CancelJobRequest{JobId: running})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	// A job waiting for its time is cancelled before it ever runs.
	later := e.insert(t, stepsArgs{WorkspaceID: "ws1", Steps: 1}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.Equal(t, tasksv1.JobStatus_JOB_STATUS_QUEUED, e.get(t, "ws1", later).GetStatus())
	resp, err := e.client.CancelJob(as("ws1"), &tasksv1.CancelJobRequest{JobId: later})
	require.NoError(t, err)
	require.Equal(t, tasksv1.JobStatus_JOB_STATUS_CANCELLED, resp.GetJob().GetStatus())
	require.Zero(t, resp.GetJob().GetAttempt())

	// Retrying a cancelled job runs it now.
	_, err = e.client.RetryJob(as("ws1"), &tasksv1.RetryJobRequest{JobId: later})
	require.NoError(t, err)
	e.eventually(t, "ws1", later, "succeeded", hasStatus(tasksv1.JobStatus_JOB_STATUS_SUCCEEDED))
}

func TestJobsAreScopedToTheirWorkspace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noStart: true})
	mine := e.insert(t, stepsArgs{WorkspaceID: "ws1", Steps: 1}, nil)
	theirs := e.insert(t, stepsArgs{WorkspaceID: "ws2", Steps: 1}, nil)

	tests := []struct {
		name string
		ctx  context.Context
		id   string
		code codes.Code
	}{
		{"own job", as("ws1"), mine, codes.OK},
		{"another workspace's job", as("ws1"), theirs, codes.NotFound},
		{"no such job", as("ws1"), "999999", codes.NotFound},
		{"not a job id", as("ws1"), "1; DROP TABLE river_job", codes.InvalidArgument},
		{"negative id", as("ws1"), "-4", codes.InvalidArgument},
		{"no workspace", context.Background(), mine, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.GetJob(tt.ctx, &tasksv1.GetJobRequest{JobId: tt.id})
			require.Equal(t, tt.code, status.Code(err))
			if tt.code == codes.OK {
				return
			}
			_, err = e.client.CancelJob(tt.ctx, &tasksv1.CancelJobRequest{JobId: tt.id})
			require.Equal(t, tt.code, status.Code(err))
			_, err = e.client.RetryJob(tt.ctx, &tasksv1.RetryJobRequest{JobId: tt.id})
			require.Equal(t, tt.code, status.Code(err))
		})
	}
	// The other workspace's job is untouched.
	require.Equal(t, tasksv1.JobStatus_JOB_STATUS_QUEUED, e.get(t, "ws2", theirs).GetStatus())

	list, err := e.client.ListJobs(as("ws1"), &tasksv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetJobs(), 1)
	require.Equal(t, mine, list.GetJobs()[0].GetJobId())
}

func TestListJobsPagesNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noStart: true})
	var ids []string
	for range 7 {
		ids = append(ids, e.insert(t, stepsArgs{WorkspaceID: "ws1", Steps: 1}, nil))
	}
	// One job of another workspace in between, and an internal delivery job: neither listed.
	e.insert(t, stepsArgs{WorkspaceID: "ws2", Steps: 1}, nil)
	require.NoError(t, pgx.BeginFunc(context.Background(), e.rt.pool, func(tx pgx.Tx) error {
		_, err := jobs.InsertTx(context.Background(), tx, jobs.WebhookDeliveryArgs{
			WorkspaceID: "ws1", WebhookID: "w", URL: "http://127.0.0.1:9/", Body: []byte("{}"),
		}, nil)
		return err
	}))

	var got []string
	token := ""
	pages := 0
	for {
		resp, err := e.client.ListJobs(as("ws1"), &tasksv1.ListJobsRequest{PageSize: 3, PageToken: token})
		require.NoError(t, err)
		require.LessOrEqual(t, len(resp.GetJobs()), 3)
		for _, j := range resp.GetJobs() {
			got = append(got, j.GetJobId())
		}
		pages++
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, 3, pages)
	want := make([]string, len(ids))
	for i, id := range ids {
		want[len(ids)-1-i] = id
	}
	require.Equal(t, want, got)

	// Status filter: nothing has run, so none succeeded and all are queued.
	resp, err := e.client.ListJobs(as("ws1"), &tasksv1.ListJobsRequest{Statuses: []tasksv1.JobStatus{tasksv1.JobStatus_JOB_STATUS_SUCCEEDED}})
	require.NoError(t, err)
	require.Empty(t, resp.GetJobs())
	resp, err = e.client.ListJobs(as("ws1"), &tasksv1.ListJobsRequest{Statuses: []tasksv1.JobStatus{tasksv1.JobStatus_JOB_STATUS_QUEUED}})
	require.NoError(t, err)
	require.Len(t, resp.GetJobs(), 7)

	bad := []*tasksv1.ListJobsRequest{
		{PageSize: -1},
		{PageSize: 501},
		{PageToken: "not-a-token"},
		{PageToken: "' OR 1=1 --"},
		{Statuses: []tasksv1.JobStatus{tasksv1.JobStatus(42)}},
		{Types: []tasksv1.JobType{tasksv1.JobType(42)}},
	}
	for _, req := range bad {
		_, err := e.client.ListJobs(as("ws1"), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", req)
	}
}

func TestStatusNumbersMatchTheContract(t *testing.T) {
	t.Parallel()
	pairs := map[Status]tasksv1.JobStatus{
		StatusQueued: tasksv1.JobStatus_JOB_STATUS_QUEUED, StatusRunning: tasksv1.JobStatus_JOB_STATUS_RUNNING,
		StatusSucceeded: tasksv1.JobStatus_JOB_STATUS_SUCCEEDED, StatusFailed: tasksv1.JobStatus_JOB_STATUS_FAILED,
		StatusCancelled: tasksv1.JobStatus_JOB_STATUS_CANCELLED, StatusDead: tasksv1.JobStatus_JOB_STATUS_DEAD,
	}
	for ours, theirs := range pairs {
		require.Equal(t, int32(theirs), int32(ours), theirs.String())
	}
	types := map[Type]tasksv1.JobType{
		TypeImport: tasksv1.JobType_JOB_TYPE_IMPORT, TypeReextract: tasksv1.JobType_JOB_TYPE_REEXTRACT,
		TypeRetentionPurge: tasksv1.JobType_JOB_TYPE_RETENTION_PURGE,
	}
	for ours, theirs := range types {
		require.Equal(t, int32(theirs), int32(ours), theirs.String())
	}
	require.Len(t, statusPredicate, len(pairs))
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	b := backoff{base: time.Second, max: 10 * time.Second}
	tests := []struct {
		failure int
		want    time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second}, {5, 10 * time.Second}, {400, 10 * time.Second}}
	for _, tt := range tests {
		d := b.delay(tt.failure)
		require.InDelta(t, float64(tt.want), float64(d), 0.1*float64(tt.want)+1, "failure %d", tt.failure)
	}
}

// jobsGauge reads vigil_tasks_jobs{kind, state} from the runtime's registry.
func jobsGauge(t *testing.T, e *env, kind, state string) float64 {
	t.Helper()
	families, err := e.metrics.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "vigil_tasks_jobs" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["state"] == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
