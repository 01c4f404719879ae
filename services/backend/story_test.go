package backend_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/services/imageapi"
	"github.com/vigilhq/vigil/services/tasks"
)

// TestUserStory: from the first admin to 1,000 persons imported by a bulk job with
// progress, searched, identified, edited and erased; then the free tier's person limit.
func TestUserStory(t *testing.T) {
	var store *objstore.Store
	e := newEnv(t, imageapi.Module, tasks.Module, fx.Populate(&store))
	a := e.admin() // the first admin, from the credentials printed on first start
	ctx := context.Background()

	// Three photos already in Vigil's object store; the rest of the rows have none.
	photos := map[string]string{"p0001": "obama_1.jpg", "p0002": "biden_1.jpg", "p0003": "astronaut_collins.png"}
	for _, file := range photos {
		data := face(t, file)
		require.NoError(t, store.Put(ctx, e.workspace+"/uploads/"+file, bytes.NewReader(data), int64(len(data)), ""))
	}
	var csv bytes.Buffer
	csv.WriteString("external_id,name,url\n")
	for i := 1; i <= 1000; i++ {
		id := fmt.Sprintf("p%04d", i)
		url := ""
		if f, ok := photos[id]; ok {
			url = e.workspace + "/uploads/" + f
		}
		fmt.Fprintf(&csv, "%s,Person %d,%s\n", id, i, url)
	}
	jobs := tasksv1.NewTaskServiceClient(e.conn)
	created, err := jobs.CreateImportJob(a, &tasksv1.CreateImportJobRequest{
		Format: tasksv1.ImportFormat_IMPORT_FORMAT_CSV, Source: &tasksv1.CreateImportJobRequest_Content{Content: csv.Bytes()},
		FileName: "persons.csv"})
	require.NoError(t, err)
	jobID := created.GetJob().GetJobId()

	var progress []int64
	var job *tasksv1.Job
	require.Eventually(t, func() bool {
		resp, err := jobs.GetJob(a, &tasksv1.GetJobRequest{JobId: jobID})
		require.NoError(t, err)
		job = resp.GetJob()
		if n := len(progress); n == 0 || progress[n-1] != job.GetProgress().GetDone() {
			progress = append(progress, job.GetProgress().GetDone())
		}
		require.NotContains(t, []tasksv1.JobStatus{tasksv1.JobStatus_JOB_STATUS_DEAD, tasksv1.JobStatus_JOB_STATUS_CANCELLED}, job.GetStatus(), job.String())
		return job.GetStatus() == tasksv1.JobStatus_JOB_STATUS_SUCCEEDED
	}, 3*time.Minute, 100*time.Millisecond)
	require.Equal(t, int64(1000), job.GetProgress().GetTotal())
	require.Equal(t, int64(1000), job.GetProgress().GetDone())
	require.Zero(t, job.GetProgress().GetFailed(), job.GetItemErrors())
	t.Logf("progress observed: %v", progress)
	require.Equal(t, 1000, e.count("persons"))
	require.Equal(t, 3, e.count("photos"))

	// Searched: by name, by external id, page by page.
	found, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{NameContains: "person 99"})
	require.NoError(t, err)
	require.Len(t, found.GetPersons(), 11) // 99 and 990..999
	seen := 0
	tok := ""
	for {
		page, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{PageSize: 300, PageToken: tok})
		require.NoError(t, err)
		seen += len(page.GetPersons())
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	require.Equal(t, 1000, seen)
	byExt, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{ExternalId: "p0001"})
	require.NoError(t, err)
	require.Len(t, byExt.GetPersons(), 1)
	obama := byExt.GetPersons()[0]

	// Identified from another photo.
	id, err := e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), Threshold: 0.3})
	require.NoError(t, err)
	require.NotEmpty(t, id.GetCandidates())
	require.Equal(t, obama.GetId(), id.GetCandidates()[0].GetPerson().GetId())

	// Edited.
	upd, err := e.persons().UpdatePerson(a, &backendv1.UpdatePersonRequest{
		Person:     &backendv1.Person{Id: obama.GetId(), Name: "Barack Obama", CustomFields: mustStruct(t, map[string]any{"role": "president"})},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name", "custom_fields"}}})
	require.NoError(t, err)
	require.Greater(t, upd.GetPerson().GetVersion(), obama.GetVersion())
	byField, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{CustomFieldEquals: map[string]string{"role": "president"}})
	require.NoError(t, err)
	require.Len(t, byField.GetPersons(), 1)

	// The free tier holds 1,000 persons: the 1,001st is refused, naming the limit.
	_, err = e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "one too many"}})
	require.Equal(t, codes.ResourceExhausted, code(err))
	require.Contains(t, status.Convert(err).Message(), "max_persons")

	// Erased: gone from the database, the matcher and the object store; audited.
	_, err = e.persons().DeletePerson(a, &backendv1.DeletePersonRequest{PersonId: obama.GetId()})
	require.NoError(t, err)
	id, err = e.persons().Identify(a, &backendv1.IdentifyRequest{Image: face(t, "obama_2.jpg"), Threshold: 0.3})
	require.NoError(t, err)
	for _, c := range id.GetCandidates() {
		require.NotEqual(t, obama.GetId(), c.GetPerson().GetId())
	}
	keys, err := store.List(ctx, "persons/"+e.workspace+"/"+obama.GetId())
	require.NoError(t, err)
	require.Empty(t, keys)
	entries, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{Target: "person/" + obama.GetId()})
	require.NoError(t, err)
	require.Equal(t, "/vigil.backend.v1.PersonService/DeletePerson", entries.GetEntries()[0].GetMethod())

	// With the slot freed, creation works again.
	_, err = e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "fits now"}})
	require.NoError(t, err)
}
