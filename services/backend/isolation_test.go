package backend_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// TestWorkspacesAreIsolated fills workspace A with one of everything and proves that B's
// admin can neither read, list, change nor delete any of it, by id or by search.
func TestWorkspacesAreIsolated(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	bTok, bWS := e.secondWorkspace("tenant-b")
	b := as(bTok)
	require.NotEqual(t, e.workspace, bWS)

	group, err := e.groups().CreateGroup(a, &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "vip"}})
	require.NoError(t, err)
	gid := group.GetGroup().GetId()
	person, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{
		Name: "Alice A", ExternalId: "emp-1", GroupIds: []string{gid}}})
	require.NoError(t, err)
	pid := person.GetPerson().GetId()
	agent, err := e.agents().CreateAgent(a, &backendv1.CreateAgentRequest{Name: "gate"})
	require.NoError(t, err)
	aid := agent.GetAgent().GetId()
	cam, err := e.agents().CreateCamera(a, &backendv1.CreateCameraRequest{Camera: &backendv1.Camera{AgentId: aid, Name: "door"}})
	require.NoError(t, err)
	cid := cam.GetCamera().GetId()
	hook, err := e.webhooks().CreateWebhook(a, &backendv1.CreateWebhookRequest{Webhook: &backendv1.Webhook{Url: "https://example.com/hook", Enabled: true}})
	require.NoError(t, err)
	wid := hook.GetWebhook().GetId()
	key, err := e.keys().CreateApiKey(a, &backendv1.CreateApiKeyRequest{Name: "k", Role: commonv1.Role_ROLE_VIEWER})
	require.NoError(t, err)
	kid := key.GetApiKey().GetId()
	user, err := e.users().CreateUser(a, &backendv1.CreateUserRequest{Email: "alice@a.example", Password: "correct horse battery", Role: commonv1.Role_ROLE_VIEWER})
	require.NoError(t, err)
	uid := user.GetUser().GetId()
	_, err = e.db.Pool.Exec(context.Background(), `INSERT INTO events (id, workspace_id, type, event_time, camera_id, person_id)
		VALUES ('ev-a-1', $1, 1, now(), $2, $3)`, e.workspace, cid, pid)
	require.NoError(t, err)

	// By id: every call of B on A's objects is NOT_FOUND, as if they did not exist.
	byID := []struct {
		name string
		call func() error
	}{
		{"GetPerson", func() error {
			_, err := e.persons().GetPerson(b, &backendv1.GetPersonRequest{PersonId: pid})
			return err
		}},
		{"UpdatePerson", func() error {
			_, err := e.persons().UpdatePerson(b, &backendv1.UpdatePersonRequest{Person: &backendv1.Person{Id: pid, Name: "pwned"}})
			return err
		}},
		{"DeletePerson", func() error {
			_, err := e.persons().DeletePerson(b, &backendv1.DeletePersonRequest{PersonId: pid})
			return err
		}},
		{"AddPhoto", func() error {
			_, err := e.persons().AddPhoto(b, &backendv1.AddPhotoRequest{PersonId: pid, Image: pngHeader})
			return err
		}},
		{"GetGroup", func() error { _, err := e.groups().GetGroup(b, &backendv1.GetGroupRequest{GroupId: gid}); return err }},
		{"DeleteGroup", func() error {
			_, err := e.groups().DeleteGroup(b, &backendv1.DeleteGroupRequest{GroupId: gid})
			return err
		}},
		{"CreatePerson in A's group", func() error {
			_, err := e.persons().CreatePerson(b, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "x", GroupIds: []string{gid}}})
			return err
		}},
		{"GetAgent", func() error { _, err := e.agents().GetAgent(b, &backendv1.GetAgentRequest{AgentId: aid}); return err }},
		{"RotateAgentToken", func() error {
			_, err := e.agents().RotateAgentToken(b, &backendv1.RotateAgentTokenRequest{AgentId: aid})
			return err
		}},
		{"CreateCamera on A's agent", func() error {
			_, err := e.agents().CreateCamera(b, &backendv1.CreateCameraRequest{Camera: &backendv1.Camera{AgentId: aid, Name: "spy"}})
			return err
		}},
		{"GetCamera", func() error {
			_, err := e.agents().GetCamera(b, &backendv1.GetCameraRequest{CameraId: cid})
			return err
		}},
		{"DeleteCamera", func() error {
			_, err := e.agents().DeleteCamera(b, &backendv1.DeleteCameraRequest{CameraId: cid})
			return err
		}},
		{"GetWebhook", func() error {
			_, err := e.webhooks().GetWebhook(b, &backendv1.GetWebhookRequest{WebhookId: wid})
			return err
		}},
		{"ListWebhookDeliveries", func() error {
			_, err := e.webhooks().ListWebhookDeliveries(b, &backendv1.ListWebhookDeliveriesRequest{WebhookId: wid})
			return err
		}},
		{"GetApiKey", func() error { _, err := e.keys().GetApiKey(b, &backendv1.GetApiKeyRequest{ApiKeyId: kid}); return err }},
		{"RevokeApiKey", func() error {
			_, err := e.keys().RevokeApiKey(b, &backendv1.RevokeApiKeyRequest{ApiKeyId: kid})
			return err
		}},
		{"GetUser", func() error { _, err := e.users().GetUser(b, &backendv1.GetUserRequest{UserId: uid}); return err }},
		{"UpdateUser password", func() error {
			pw := "hijacked password!"
			_, err := e.users().UpdateUser(b, &backendv1.UpdateUserRequest{UserId: uid, Password: &pw})
			return err
		}},
		{"GetEvent", func() error {
			_, err := e.events().GetEvent(b, &backendv1.GetEventRequest{EventId: "ev-a-1"})
			return err
		}},
	}
	for _, tc := range byID {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, codes.NotFound, code(tc.call()))
		})
	}

	// By listing and searching: B sees only its own (empty) workspace.
	lists := []struct {
		name string
		call func() (proto.Message, error)
	}{
		{"ListPersons", func() (proto.Message, error) {
			return e.persons().ListPersons(b, &backendv1.ListPersonsRequest{NameContains: "Alice"})
		}},
		{"ListPersons by external id", func() (proto.Message, error) {
			return e.persons().ListPersons(b, &backendv1.ListPersonsRequest{ExternalId: "emp-1"})
		}},
		{"ListGroups", func() (proto.Message, error) { return e.groups().ListGroups(b, &backendv1.ListGroupsRequest{}) }},
		{"ListAgents", func() (proto.Message, error) { return e.agents().ListAgents(b, &backendv1.ListAgentsRequest{}) }},
		{"ListCameras", func() (proto.Message, error) { return e.agents().ListCameras(b, &backendv1.ListCamerasRequest{}) }},
		{"ListWebhooks", func() (proto.Message, error) { return e.webhooks().ListWebhooks(b, &backendv1.ListWebhooksRequest{}) }},
		{"ListApiKeys", func() (proto.Message, error) { return e.keys().ListApiKeys(b, &backendv1.ListApiKeysRequest{}) }},
		{"ListEvents", func() (proto.Message, error) {
			return e.events().ListEvents(b, &backendv1.ListEventsRequest{PersonId: pid})
		}},
	}
	for _, tc := range lists {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.call()
			require.NoError(t, err)
			require.NotContains(t, prototext.Format(resp), e.workspace)
			for _, id := range []string{pid, gid, aid, cid, wid, kid, "ev-a-1"} {
				require.NotContains(t, prototext.Format(resp), id)
			}
		})
	}
	users, err := e.users().ListUsers(b, &backendv1.ListUsersRequest{})
	require.NoError(t, err)
	require.Len(t, users.GetUsers(), 1, "B's admin only")

	// B's audit log holds B's own calls only.
	auditB, err := e.audit().ListAuditEntries(b, &backendv1.ListAuditEntriesRequest{PageSize: 500})
	require.NoError(t, err)
	for _, en := range auditB.GetEntries() {
		require.Equal(t, bWS, en.GetWorkspaceId())
	}

	// And nothing of A changed.
	got, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: pid})
	require.NoError(t, err)
	require.Equal(t, "Alice A", got.GetPerson().GetName())
	k, err := e.keys().GetApiKey(a, &backendv1.GetApiKeyRequest{ApiKeyId: kid})
	require.NoError(t, err)
	require.Nil(t, k.GetApiKey().GetRevokeTime())
	_, err = e.agents().GetCamera(a, &backendv1.GetCameraRequest{CameraId: cid})
	require.NoError(t, err)
	_, err = e.auth().Login(context.Background(), &backendv1.LoginRequest{Email: "alice@a.example", Password: "correct horse battery"})
	require.NoError(t, err)

	// B's admin naming A's workspace in the internal header gains nothing: the header is
	// honoured for the internal token only.
	spoof := metadata.AppendToOutgoingContext(b, "x-vigil-workspace-id", e.workspace)
	_, err = e.persons().GetPerson(spoof, &backendv1.GetPersonRequest{PersonId: pid})
	require.Equal(t, codes.NotFound, code(err))
}

// pngHeader is the start of a PNG: enough for the type check, not an image.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde")
