package backend_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	viewer := e.userWithRole(commonv1.Role_ROLE_VIEWER)

	p, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "To erase"}, RequestId: "audit-1"})
	require.NoError(t, err)
	pid := p.GetPerson().GetId()
	_, err = e.persons().DeletePerson(as(viewer), &backendv1.DeletePersonRequest{PersonId: pid})
	require.Equal(t, codes.PermissionDenied, code(err))
	_, err = e.persons().DeletePerson(a, &backendv1.DeletePersonRequest{PersonId: pid})
	require.NoError(t, err)
	_, err = e.persons().DeletePerson(a, &backendv1.DeletePersonRequest{PersonId: pid})
	require.Equal(t, codes.NotFound, code(err))
	// Reads are not audited.
	_, err = e.persons().ListPersons(a, &backendv1.ListPersonsRequest{})
	require.NoError(t, err)

	resp, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{Target: "person/" + pid})
	require.NoError(t, err)
	var outcomes []string
	for _, en := range resp.GetEntries() {
		require.Equal(t, e.workspace, en.GetWorkspaceId())
		require.NotEmpty(t, en.GetPeerAddr())
		require.NotNil(t, en.GetTime())
		outcomes = append(outcomes, en.GetMethod()+" "+en.GetOutcome()+" "+en.GetSubjectKind().String())
	}
	// Newest first.
	require.Equal(t, []string{
		"/vigil.backend.v1.PersonService/DeletePerson NOT_FOUND KIND_WORKSPACE",
		"/vigil.backend.v1.PersonService/DeletePerson OK KIND_WORKSPACE",
		"/vigil.backend.v1.PersonService/CreatePerson OK KIND_WORKSPACE",
	}, outcomes)
	erase := resp.GetEntries()[1]
	require.Equal(t, e.adminEmail, erase.GetSubjectName())
	require.Equal(t, "audit-1", resp.GetEntries()[2].GetRequestId())

	// The viewer's refused attempt is recorded too (refused before the request is read,
	// so without a target).
	denied, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{Method: "/vigil.backend.v1.PersonService/DeletePerson"})
	require.NoError(t, err)
	require.Len(t, denied.GetEntries(), 3)
	require.Equal(t, "PERMISSION_DENIED", denied.GetEntries()[2].GetOutcome())
	require.Contains(t, denied.GetEntries()[2].GetSubjectName(), "ROLE_VIEWER")

	all, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{Method: "/vigil.backend.v1.PersonService/ListPersons"})
	require.NoError(t, err)
	require.Empty(t, all.GetEntries())

	// Sign-ins are recorded too (the admin's and the viewer's).
	logins, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{Method: "/vigil.backend.v1.AuthService/Login"})
	require.NoError(t, err)
	require.Len(t, logins.GetEntries(), 2)
	require.Equal(t, "OK", logins.GetEntries()[0].GetOutcome())

	// Paging walks every entry once.
	seen := map[string]bool{}
	tok := ""
	for {
		page, err := e.audit().ListAuditEntries(a, &backendv1.ListAuditEntriesRequest{PageSize: 2, PageToken: tok})
		require.NoError(t, err)
		for _, en := range page.GetEntries() {
			require.False(t, seen[en.GetId()])
			seen[en.GetId()] = true
		}
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	require.GreaterOrEqual(t, len(seen), 5) // the user creation too
}
