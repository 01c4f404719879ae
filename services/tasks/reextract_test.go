package tasks_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/services/backend"
	"github.com/vigilhq/vigil/services/imageapi"
	"github.com/vigilhq/vigil/services/licensing"
	"github.com/vigilhq/vigil/services/matcher"
)

// TestReextractAfterModelChange: persons enrolled with real photos; a model change is
// simulated by giving their stored templates an old model id. The job pages through the
// backend (2 photos a page), survives a failed page by resuming at its checkpoint, and
// leaves every template of the current model in PostgreSQL and the matcher; a second job
// finds nothing to do.
func TestReextractAfterModelChange(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{
		before:    []fx.Option{licensing.Module},
		after:     []fx.Option{matcher.Module, imageapi.Module},
		extra:     []fx.Option{fx.Provide(func(s *objstore.Store) backend.ObjectStore { return backendObjects{s} })},
		tasksYAML: "reextract_page_size: 2\n",
	})
	ctx := context.Background()
	persons := backendv1.NewPersonServiceClient(s.conn)
	jobsClient := tasksv1.NewTaskServiceClient(s.conn)

	enrol := map[string][]string{"obama": {"obama_1.jpg", "obama_2.jpg"}, "biden": {"biden_1.jpg", "biden_2.jpg"}}
	ids := map[string]string{}
	var oldest *backendv1.Photo
	for _, who := range []string{"obama", "biden"} {
		p, err := persons.CreatePerson(s.in(), &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: who, ExternalId: who}})
		require.NoError(t, err)
		ids[who] = p.GetPerson().GetId()
		for _, f := range enrol[who] {
			r, err := persons.AddPhoto(s.in(), &backendv1.AddPhotoRequest{PersonId: ids[who], Image: face(t, f)})
			require.NoError(t, err, f)
			if oldest == nil {
				oldest = r.GetPhoto()
			}
		}
	}
	model := oldest.GetTemplateModel()
	require.NotEmpty(t, model)

	// The model changed: every stored template is now of an old one, and the matcher holds
	// none of the current model (its old gallery cannot answer current queries).
	_, err := s.pool.Exec(ctx, `UPDATE photos SET template_model = 'old-model@0'`)
	require.NoError(t, err)
	_, err = matcherv1.NewMatcherServiceClient(s.conn).RemoveTemplates(s.in(), &matcherv1.RemoveTemplatesRequest{
		WorkspaceId: s.workspace, PersonIds: []string{ids["obama"], ids["biden"]}})
	require.NoError(t, err)
	before, err := persons.Identify(s.in(), &backendv1.IdentifyRequest{Image: face(t, "obama_3.jpg"), Threshold: 0.3})
	require.NoError(t, err)
	require.Empty(t, before.GetCandidates())
	// The oldest photo (the second page; photos go newest first) cannot be read for now:
	// the attempts fail on that page and the job dies, its first page checkpointed.
	require.NoError(t, s.objects.Delete(ctx, oldest.GetObjectKey()))

	created, err := jobsClient.CreateReextractJob(s.in(), &tasksv1.CreateReextractJobRequest{})
	require.NoError(t, err)
	require.Equal(t, tasksv1.JobType_JOB_TYPE_REEXTRACT, created.GetJob().GetType())
	id := created.GetJob().GetJobId()
	// One at a time: asked again while it runs (its attempts take at least the back-offs,
	// 50+100+200+200 ms, to die), the same job is returned.
	dup, err := jobsClient.CreateReextractJob(s.in(), &tasksv1.CreateReextractJobRequest{})
	require.NoError(t, err)
	require.Equal(t, id, dup.GetJob().GetJobId())
	dead := waitJob(t, jobsClient, s.in(), id, tasksv1.JobStatus_JOB_STATUS_DEAD)
	require.NotEmpty(t, dead.GetErrors())
	require.Equal(t, int64(4), dead.GetProgress().GetTotal())
	require.Equal(t, int64(2), dead.GetProgress().GetDone(), "the first page is done and checkpointed")

	// The image is back; one more attempt resumes at the checkpoint: the first page is not
	// redone (it would count as already current).
	img := face(t, "obama_1.jpg")
	require.NoError(t, s.objects.Put(ctx, oldest.GetObjectKey(), bytes.NewReader(img), int64(len(img)), "image/jpeg"))
	_, err = jobsClient.RetryJob(s.in(), &tasksv1.RetryJobRequest{JobId: id})
	require.NoError(t, err)
	done := waitJob(t, jobsClient, s.in(), id, tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	require.Equal(t, int64(4), done.GetProgress().GetDone())
	require.Equal(t, int64(4), done.GetProgress().GetTotal())
	require.Zero(t, done.GetProgress().GetFailed())
	require.Contains(t, done.GetDescription(), "4 photos: 4 re-extracted, 0 already current, 0 failed; model "+model)

	var stale int
	require.NoError(t, s.pool.QueryRow(ctx, `SELECT count(*) FROM photos WHERE template_model <> $1`, model).Scan(&stale))
	require.Zero(t, stale, "every template is of the current model")

	// The matcher finds each person again, with templates of the current model.
	for who, probe := range map[string]string{"obama": "obama_3.jpg", "biden": "biden_2.jpg"} {
		found, err := persons.Identify(s.in(), &backendv1.IdentifyRequest{Image: face(t, probe), Threshold: 0.3})
		require.NoError(t, err, who)
		require.NotEmpty(t, found.GetCandidates(), who)
		require.Equal(t, ids[who], found.GetCandidates()[0].GetPerson().GetId(), who)
	}

	// A second run skips everything.
	again, err := jobsClient.CreateReextractJob(s.in(), &tasksv1.CreateReextractJobRequest{})
	require.NoError(t, err)
	require.NotEqual(t, id, again.GetJob().GetJobId(), "a finished job does not block a new one")
	second := waitJob(t, jobsClient, s.in(), again.GetJob().GetJobId(), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	require.Equal(t, int64(4), second.GetProgress().GetDone())
	require.Contains(t, second.GetDescription(), "4 photos: 0 re-extracted, 4 already current, 0 failed")
}
