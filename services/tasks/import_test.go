package tasks_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/services/backend"
	"github.com/vigilhq/vigil/services/imageapi"
	"github.com/vigilhq/vigil/services/licensing"
	"github.com/vigilhq/vigil/services/matcher"
)

// backendObjects gives the backend the platform's object store (the backend's module
// takes an optional ObjectStore of its own shape).
type backendObjects struct{ s *objstore.Store }

func (o backendObjects) Put(ctx context.Context, key string, data []byte, contentType string) error {
	return o.s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), contentType)
}

func (o backendObjects) Get(ctx context.Context, key string) ([]byte, string, error) {
	rc, info, err := o.s.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, info.ContentType, err
}

func (o backendObjects) Delete(ctx context.Context, key string) error { return o.s.Delete(ctx, key) }

// newImportStack adds what creating a person with a photo needs: the Image API (real
// models), the matcher and licensing (free tier).
func newImportStack(t *testing.T) *stack {
	return newStack(t, stackOptions{
		before: []fx.Option{licensing.Module},
		after:  []fx.Option{matcher.Module, imageapi.Module},
		extra:  []fx.Option{fx.Provide(func(s *objstore.Store) backend.ObjectStore { return backendObjects{s} })},
	})
}

func face(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", name))
	require.NoError(t, err)
	return b
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		require.NoError(t, err)
		_, err = w.Write(files[n])
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func waitJob(t *testing.T, c tasksv1.TaskServiceClient, ctx context.Context, id string, want tasksv1.JobStatus) *tasksv1.Job {
	t.Helper()
	var j *tasksv1.Job
	ok := assert.Eventually(t, func() bool {
		resp, err := c.GetJob(ctx, &tasksv1.GetJobRequest{JobId: id})
		require.NoError(t, err)
		j = resp.GetJob()
		return j.GetStatus() == want
	}, 90*time.Second, 50*time.Millisecond)
	if !ok {
		t.Fatalf("job %s never became %s; last: %v", id, want, j)
	}
	return j
}

// personsByExternalID lists every person of the workspace with its photo count.
func personsByExternalID(t *testing.T, s *stack) map[string]*backendv1.Person {
	t.Helper()
	out := map[string]*backendv1.Person{}
	resp, err := backendv1.NewPersonServiceClient(s.conn).ListPersons(s.in(), &backendv1.ListPersonsRequest{PageSize: 100})
	require.NoError(t, err)
	for _, p := range resp.GetPersons() {
		out[p.GetExternalId()] = p
	}
	return out
}

func TestImportZipAndCSVOfRealPhotos(t *testing.T) {
	t.Parallel()
	s := newImportStack(t)
	jobsClient := tasksv1.NewTaskServiceClient(s.conn)

	// A zip: a folder is one person with several photos; a file is a person with one;
	// a photo without a face and a text file are item failures that leave no person.
	archive := zipOf(t, map[string][]byte{
		"obama/1.jpg":      face(t, "obama_1.jpg"),
		"obama/2.jpg":      face(t, "obama_2.jpg"),
		"biden.jpg":        face(t, "biden_1.jpg"),
		"coffee.png":       face(t, "noface_coffee.png"),
		"notes/readme.txt": []byte("not a photo"),
	})
	created, err := jobsClient.CreateImportJob(s.in(), &tasksv1.CreateImportJobRequest{
		Format: tasksv1.ImportFormat_IMPORT_FORMAT_ZIP, Source: &tasksv1.CreateImportJobRequest_Content{Content: archive},
		FileName: "people.zip",
	})
	require.NoError(t, err)
	require.Equal(t, tasksv1.JobType_JOB_TYPE_IMPORT, created.GetJob().GetType())
	zipJob := waitJob(t, jobsClient, s.in(), created.GetJob().GetJobId(), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	require.Equal(t, int64(4), zipJob.GetProgress().GetTotal(), "obama, biden, coffee, readme")
	require.Equal(t, int64(4), zipJob.GetProgress().GetDone())
	require.Equal(t, int64(2), zipJob.GetProgress().GetFailed(), "%v", zipJob.GetItemErrors())
	require.Len(t, zipJob.GetItemErrors(), 2)

	persons := personsByExternalID(t, s)
	require.Len(t, persons, 2, "only the persons with a usable photo")
	require.Len(t, persons["obama"].GetPhotos(), 2)
	require.Len(t, persons["biden"].GetPhotos(), 1)

	// The same job run again from scratch, as after a crash that lost its checkpoint:
	// the request ids make every call a replay, so nothing is duplicated.
	_, err = s.pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', finalized_at = NULL,
		scheduled_at = now(), metadata = metadata - 'vigil_progress' WHERE id = $1`, mustID(t, zipJob.GetJobId()))
	require.NoError(t, err)
	waitJob(t, jobsClient, s.in(), zipJob.GetJobId(), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	again := personsByExternalID(t, s)
	require.Len(t, again, 2)
	require.Len(t, again["obama"].GetPhotos(), 2)
	require.Len(t, again["biden"].GetPhotos(), 1)

	// A CSV of object keys and URLs of photos already in the object store.
	prefix := s.workspace + "/uploads/"
	for _, n := range []string{"obama_3.jpg", "biden_1.jpg"} {
		b := face(t, n)
		require.NoError(t, s.objects.Put(context.Background(), prefix+n, bytes.NewReader(b), int64(len(b)), "image/jpeg"))
	}
	csv := fmt.Sprintf("external_id,name,url\n"+
		"e-obama,Barack Obama,%[1]sobama_3.jpg\n"+
		"e-biden,Joe Biden,s3://vigil/%[1]sbiden_1.jpg\n"+
		"e-nophoto,Nobody Yet,\n"+
		"e-missing,Missing Photo,%[1]smissing.jpg\n"+
		"e-foreign,Other Workspace,other-workspace/uploads/x.jpg\n"+
		"e-short,too few fields\n", prefix)
	created, err = jobsClient.CreateImportJob(s.in(), &tasksv1.CreateImportJobRequest{
		Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV, Source: &tasksv1.CreateImportJobRequest_Content{Content: []byte(csv)},
		FileName: "people.csv",
	})
	require.NoError(t, err)
	csvJob := waitJob(t, jobsClient, s.in(), created.GetJob().GetJobId(), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	require.Equal(t, int64(6), csvJob.GetProgress().GetTotal())
	require.Equal(t, int64(3), csvJob.GetProgress().GetFailed(), "%v", csvJob.GetItemErrors())

	persons = personsByExternalID(t, s)
	require.Equal(t, "Barack Obama", persons["e-obama"].GetName())
	require.Len(t, persons["e-obama"].GetPhotos(), 1)
	require.Len(t, persons["e-biden"].GetPhotos(), 1)
	require.Contains(t, persons, "e-nophoto", "a row without a url is a person without a photo")
	require.Empty(t, persons["e-nophoto"].GetPhotos())
	require.NotContains(t, persons, "e-missing")
	require.NotContains(t, persons, "e-foreign")
	require.NotContains(t, persons, "e-short")
}

func TestCreateImportJobRefusesBadInput(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	c := tasksv1.NewTaskServiceClient(s.conn)
	tests := []struct {
		name string
		req  *tasksv1.CreateImportJobRequest
	}{
		{"no format", &tasksv1.CreateImportJobRequest{Source: &tasksv1.CreateImportJobRequest_Content{Content: []byte("x")}}},
		{"no source", &tasksv1.CreateImportJobRequest{Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV}},
		{"not a zip", &tasksv1.CreateImportJobRequest{Format: tasksv1.ImportFormat_IMPORT_FORMAT_ZIP,
			Source: &tasksv1.CreateImportJobRequest_Content{Content: []byte("PK but not really")}}},
		{"csv without the header", &tasksv1.CreateImportJobRequest{Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV,
			Source: &tasksv1.CreateImportJobRequest_Content{Content: []byte("id,who,where\n1,a,b\n")}}},
		{"another workspace's object", &tasksv1.CreateImportJobRequest{Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV,
			Source: &tasksv1.CreateImportJobRequest_ObjectKey{ObjectKey: "someone-else/imports/x.csv"}}},
		{"path escape", &tasksv1.CreateImportJobRequest{Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV,
			Source: &tasksv1.CreateImportJobRequest_ObjectKey{ObjectKey: s.workspace + "/../x.csv"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateImportJob(s.in(), tt.req)
			require.Equal(t, codes.InvalidArgument, status.Code(err))
		})
	}
	list, err := c.ListJobs(s.in(), &tasksv1.ListJobsRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetJobs(), "no refused request queued a job")
}

// Imported persons join the groups named on the job; a group that does not exist kills
// the job at once (dead, naming the group) instead of failing every row.
func TestImportIntoGroups(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{before: []fx.Option{licensing.Module}})
	c := tasksv1.NewTaskServiceClient(s.conn)
	g, err := backendv1.NewGroupServiceClient(s.conn).CreateGroup(s.in(), &backendv1.CreateGroupRequest{
		Group: &backendv1.Group{Name: "VIP"},
	})
	require.NoError(t, err)
	csv := []byte("external_id,name,url\ng-1,One,\ng-2,Two,\n")

	created, err := c.CreateImportJob(s.in(), &tasksv1.CreateImportJobRequest{
		Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV, Source: &tasksv1.CreateImportJobRequest_Content{Content: csv},
		GroupIds: []string{g.GetGroup().GetId()},
	})
	require.NoError(t, err)
	waitJob(t, c, s.in(), created.GetJob().GetJobId(), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	members, err := backendv1.NewPersonServiceClient(s.conn).ListPersons(s.in(), &backendv1.ListPersonsRequest{GroupId: g.GetGroup().GetId()})
	require.NoError(t, err)
	require.Len(t, members.GetPersons(), 2)

	created, err = c.CreateImportJob(s.in(), &tasksv1.CreateImportJobRequest{
		Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV, Source: &tasksv1.CreateImportJobRequest_Content{Content: csv},
		GroupIds: []string{"01234567-89ab-7def-8123-456789abcdef"},
	})
	require.NoError(t, err)
	dead := waitJob(t, c, s.in(), created.GetJob().GetJobId(), tasksv1.JobStatus_JOB_STATUS_DEAD)
	require.Equal(t, int32(1), dead.GetAttempt())
	require.Contains(t, dead.GetErrors()[0].GetMessage(), "01234567-89ab-7def-8123-456789abcdef")
}

// A retried import resumes at the checkpoint its earlier attempts reached: items before
// it are not done again, and their counts carry over.
func TestImportResumesAtCheckpoint(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{before: []fx.Option{licensing.Module}})
	ctx := context.Background()
	key := s.workspace + "/imports/resume.csv"
	csv := []byte("external_id,name,url\nc-1,One,\nc-2,Two,\nc-3,Three,\nc-4,Four,\nc-5,Five,\n")
	require.NoError(t, s.objects.Put(ctx, key, bytes.NewReader(csv), int64(len(csv)), "text/csv"))

	// As left by an attempt that finished the first three items (one of them failed).
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.InsertTx(ctx, tx, jobs.BulkImportArgs{WorkspaceID: s.workspace, Format: jobs.ImportFormatCSV, ObjectKey: key},
			&jobs.InsertOpts{Metadata: []byte(`{"vigil_progress": {"done": 3, "failed": 1, "total": 5, "checkpoint": 3,
				"checkpoint_failed": 1, "item_errors": ["row 3: an earlier problem"]}}`)})
		return err
	}))
	c := tasksv1.NewTaskServiceClient(s.conn)
	j := waitJob(t, c, s.in(), strconv.FormatInt(id, 10), tasksv1.JobStatus_JOB_STATUS_SUCCEEDED)
	require.Equal(t, int64(5), j.GetProgress().GetDone())
	require.Equal(t, int64(5), j.GetProgress().GetTotal())
	require.Equal(t, int64(1), j.GetProgress().GetFailed())
	require.Equal(t, []string{"row 3: an earlier problem"}, j.GetItemErrors())

	persons := personsByExternalID(t, s)
	require.Len(t, persons, 2)
	require.Contains(t, persons, "c-4")
	require.Contains(t, persons, "c-5")
}
