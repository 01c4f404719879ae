package tasks_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/services/licensing"
)

func apiKey(t *testing.T, s *stack, role commonv1.Role) string {
	t.Helper()
	resp, err := backendv1.NewApiKeyServiceClient(s.conn).CreateApiKey(s.in(), &backendv1.CreateApiKeyRequest{
		Name: "tasks-test-" + role.String(), Role: role,
	})
	require.NoError(t, err)
	return resp.GetSecret()
}

func call(t *testing.T, method, url, key, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return resp.StatusCode, out
}

// Through the REST gateway with API keys and the real authorizer: an operator uploads a
// CSV as the raw body and follows the job; a viewer may read jobs but not create them.
func TestImportJobOverREST(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{before: []fx.Option{licensing.Module}, rest: true})
	operator := apiKey(t, s, commonv1.Role_ROLE_OPERATOR)
	viewer := apiKey(t, s, commonv1.Role_ROLE_VIEWER)

	csv := "external_id,name,url\nr-1,Ada Lovelace,\nr-2,Alan Turing,\nr-3,Grace Hopper,\n"
	code, body := call(t, "POST", s.restURL+"/v1/jobs:import?file_name=people.csv", viewer, "text/csv", csv)
	require.Equal(t, http.StatusForbidden, code, "%v", body)

	code, body = call(t, "POST", s.restURL+"/v1/jobs:import?file_name=people.csv", operator, "text/csv", csv)
	require.Equal(t, http.StatusOK, code, "%v", body)
	job := body["job"].(map[string]any)
	id := job["jobId"].(string)
	require.Equal(t, "JOB_TYPE_IMPORT", job["type"])
	require.Contains(t, job["description"], "people.csv")

	require.Eventually(t, func() bool {
		code, body = call(t, "GET", s.restURL+"/v1/jobs/"+id, viewer, "", "")
		require.Equal(t, http.StatusOK, code, "%v", body)
		return body["job"].(map[string]any)["status"] == "JOB_STATUS_SUCCEEDED"
	}, 30*time.Second, 50*time.Millisecond)
	progress := body["job"].(map[string]any)["progress"].(map[string]any)
	require.Equal(t, "3", progress["done"]) // int64 is a JSON string
	require.Equal(t, "3", progress["total"])

	code, body = call(t, "GET", s.restURL+"/v1/jobs?pageSize=10", viewer, "", "")
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Len(t, body["jobs"], 1)

	// Cancelling a finished job is a precondition failure: HTTP 400.
	code, _ = call(t, "POST", s.restURL+"/v1/jobs/"+id+":cancel", operator, "application/json", "{}")
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = call(t, "GET", s.restURL+"/v1/jobs/not-a-number", viewer, "", "")
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = call(t, "GET", s.restURL+"/v1/jobs/123456", viewer, "", "")
	require.Equal(t, http.StatusNotFound, code)

	persons, err := backendv1.NewPersonServiceClient(s.conn).ListPersons(s.in(), &backendv1.ListPersonsRequest{})
	require.NoError(t, err)
	require.Len(t, persons.GetPersons(), 3)

	// The task service's changes are in the workspace's audit log like the backend's:
	// the platform's gRPC server audits every component's mutating calls, refused ones too.
	outcomes := func(method string) []string {
		resp, err := backendv1.NewAuditServiceClient(s.conn).ListAuditEntries(s.in(),
			&backendv1.ListAuditEntriesRequest{Method: method, PageSize: 50})
		require.NoError(t, err)
		var got []string
		for _, e := range resp.GetEntries() {
			got = append(got, e.GetOutcome())
		}
		return got
	}
	require.Eventually(t, func() bool {
		got := outcomes("/vigil.tasks.v1.TaskService/CreateImportJob")
		return len(got) == 2 && slices.Contains(got, "OK") && slices.Contains(got, "PERMISSION_DENIED")
	}, 10*time.Second, 20*time.Millisecond, "the operator's import and the viewer's refused one")
	require.Eventually(t, func() bool {
		return slices.Equal(outcomes("/vigil.tasks.v1.TaskService/CancelJob"), []string{"FAILED_PRECONDITION"})
	}, 10*time.Second, 20*time.Millisecond)
}
