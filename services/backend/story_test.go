package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/services/imageapi"
	"github.com/vigilhq/vigil/services/tasks"
)

// TestUserStory: from the first admin to 1,000 persons imported by a bulk job with
// progress, searched, identified, edited and erased, over REST through the gateway and
// over gRPC; the free tier's person limit hit and reported.
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
	// Over REST, as a browser or script would: sign in with the printed credentials,
	// upload the CSV, follow the job's progress.
	httpCode, out := e.restCall(http.MethodPost, "/v1/auth:login", "", `{"email":"`+e.adminEmail+`","password":"`+e.adminPass+`"}`)
	require.Equal(t, http.StatusOK, httpCode, out)
	rest := out["sessionToken"].(string)
	body, err := json.Marshal(map[string]any{"format": "IMPORT_FORMAT_CSV", "content": csv.Bytes(), "fileName": "persons.csv"})
	require.NoError(t, err)
	httpCode, out = e.restCall(http.MethodPost, "/v1/jobs:import", rest, string(body))
	require.Equal(t, http.StatusOK, httpCode, out)
	jobID := out["job"].(map[string]any)["jobId"].(string)

	var progress []int64
	var job map[string]any
	require.Eventually(t, func() bool {
		httpCode, out := e.restCall(http.MethodGet, "/v1/jobs/"+jobID, rest, "")
		require.Equal(t, http.StatusOK, httpCode, out)
		job = out["job"].(map[string]any)
		done := jsonInt(job, "progress", "done")
		if n := len(progress); n == 0 || progress[n-1] != done {
			progress = append(progress, done)
		}
		require.NotContains(t, []string{"JOB_STATUS_DEAD", "JOB_STATUS_CANCELLED"}, job["status"], job)
		return job["status"] == "JOB_STATUS_SUCCEEDED"
	}, 3*time.Minute, 100*time.Millisecond)
	require.Equal(t, int64(1000), jsonInt(job, "progress", "total"))
	require.Equal(t, int64(1000), jsonInt(job, "progress", "done"))
	require.Zero(t, jsonInt(job, "progress", "failed"), job["itemErrors"])
	t.Logf("progress observed: %v", progress)
	require.Equal(t, 1000, e.count("persons"))
	require.Equal(t, 3, e.count("photos"))

	// Searched: by name, by external id, page by page.
	httpCode, out = e.restCall(http.MethodGet, "/v1/persons?nameContains=person%2099", rest, "")
	require.Equal(t, http.StatusOK, httpCode, out)
	require.Len(t, out["persons"], 11) // 99 and 990..999
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

	// Edited, over REST.
	httpCode, out = e.restCall(http.MethodPatch, "/v1/persons/"+obama.GetId()+"?updateMask=name,customFields", rest,
		`{"name":"Barack Obama","customFields":{"role":"president"}}`)
	require.Equal(t, http.StatusOK, httpCode, out)
	upd, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: obama.GetId()})
	require.NoError(t, err)
	require.Equal(t, "Barack Obama", upd.GetPerson().GetName())
	require.Greater(t, upd.GetPerson().GetVersion(), obama.GetVersion())
	byField, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{CustomFieldEquals: map[string]string{"role": "president"}})
	require.NoError(t, err)
	require.Len(t, byField.GetPersons(), 1)

	// The free tier holds 1,000 persons: the 1,001st is refused, naming the limit.
	_, err = e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "one too many"}})
	require.Equal(t, codes.ResourceExhausted, code(err))
	require.Contains(t, status.Convert(err).Message(), "max_persons")

	// Erased over REST: gone from the database, the matcher and the object store; audited.
	httpCode, out = e.restCall(http.MethodDelete, "/v1/persons/"+obama.GetId(), rest, "")
	require.Equal(t, http.StatusOK, httpCode, out)
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

// jsonInt reads an int64 field (JSON strings, as protojson writes them, or numbers) under
// the path in m; 0 when absent (protojson leaves zero values out).
func jsonInt(m map[string]any, path ...string) int64 {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = mm[p]
	}
	switch x := v.(type) {
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	case float64:
		return int64(x)
	}
	return 0
}
