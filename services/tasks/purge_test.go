package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/objstore"
)

// A retention purge deletes the workspace's events older than its retention and their
// images, and leaves newer events (and other workspaces') alone.
func TestRetentionPurgeDeletesExpiredEventsAndImages(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	ctx := context.Background()

	_, err := backendv1.NewWorkspaceServiceClient(s.conn).UpdateWorkspace(s.in(), &backendv1.UpdateWorkspaceRequest{
		Workspace:  &backendv1.Workspace{Settings: &backendv1.WorkspaceSettings{RetentionDays: 30}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"settings.retention_days"}},
	})
	require.NoError(t, err)
	var other string
	require.NoError(t, s.pool.QueryRow(ctx, `INSERT INTO workspaces (id, name, retention_days) VALUES (gen_random_uuid(), 'other', 1)
		RETURNING id::text`).Scan(&other))

	// 700 expired events (more than one purge batch) with a face crop each, 5 recent ones,
	// and old events of another workspace.
	const expired = 700
	now := time.Now()
	insert := func(ws, id string, at time.Time, key string) {
		_, err := s.pool.Exec(ctx, `INSERT INTO events (id, workspace_id, type, event_time, face_object_key) VALUES ($1, $2, 1, $3, $4)`,
			id, ws, at, key)
		require.NoError(t, err)
	}
	var oldKeys []string
	for i := range expired {
		key := ""
		if i%100 == 0 { // a few images, enough to see them go
			key = fmt.Sprintf("%s/events/old-%d.jpg", s.workspace, i)
			require.NoError(t, s.objects.Put(ctx, key, bytes.NewReader([]byte("jpeg")), 4, "image/jpeg"))
			oldKeys = append(oldKeys, key)
		}
		insert(s.workspace, fmt.Sprintf("old-%d", i), now.Add(-31*24*time.Hour-time.Duration(i)*time.Minute), key)
	}
	recentKey := s.workspace + "/events/recent.jpg"
	require.NoError(t, s.objects.Put(ctx, recentKey, bytes.NewReader([]byte("jpeg")), 4, "image/jpeg"))
	for i := range 5 {
		insert(s.workspace, fmt.Sprintf("recent-%d", i), now.Add(-29*24*time.Hour), recentKey)
	}
	insert(other, "other-old", now.Add(-90*24*time.Hour), "")

	c := tasksv1.NewTaskServiceClient(s.conn)
	created, err := c.CreateRetentionPurgeJob(s.in(), &tasksv1.CreateRetentionPurgeJobRequest{})
	require.NoError(t, err)
	job := waitJob(t, c, s.in(), created.GetJob().GetJobId(), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	require.Equal(t, int64(expired), job.GetProgress().GetTotal())
	require.Equal(t, int64(expired), job.GetProgress().GetDone())

	count := func(ws string) int {
		var n int
		require.NoError(t, s.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE workspace_id = $1`, ws).Scan(&n))
		return n
	}
	require.Equal(t, 5, count(s.workspace))
	require.Equal(t, 1, count(other), "another workspace's events are not this job's")
	for _, k := range oldKeys {
		_, _, err := s.objects.Get(ctx, k)
		require.True(t, errors.Is(err, objstore.ErrNotFound), "image %s of an expired event is gone: %v", k, err)
	}
	rc, _, err := s.objects.Get(ctx, recentKey)
	require.NoError(t, err, "a recent event's image stays")
	rc.Close()
}
