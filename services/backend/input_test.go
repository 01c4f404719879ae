package backend_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	a := e.admin()

	injections := []string{
		`Robert'); DROP TABLE persons;--`,
		`' OR '1'='1`,
		`%_\`,
		`"; DELETE FROM users WHERE ''='`,
	}
	t.Run("SQL injection is stored and searched as text", func(t *testing.T) {
		for _, s := range injections {
			resp, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{
				Name: s, ExternalId: s, CustomFields: mustStruct(t, map[string]any{s: s})}})
			require.NoError(t, err)
			require.Equal(t, s, resp.GetPerson().GetName())
			require.Equal(t, s, resp.GetPerson().GetExternalId())
		}
		for _, s := range injections {
			list, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{NameContains: s})
			require.NoError(t, err)
			require.Len(t, list.GetPersons(), 1, "exactly the person named %q, no wildcard or injection", s)
			list, err = e.persons().ListPersons(a, &backendv1.ListPersonsRequest{CustomFieldEquals: map[string]string{s: s}})
			require.NoError(t, err)
			require.Len(t, list.GetPersons(), 1)
		}
		require.Equal(t, len(injections), e.count("persons"))
		require.Equal(t, 1, e.count("users"))
	})

	long := strings.Repeat("é", 201)
	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"overlong person name", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: long}})
			return err
		}, codes.InvalidArgument},
		{"empty person name", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "  "}})
			return err
		}, codes.InvalidArgument},
		{"control characters", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "a\x00b"}})
			return err
		}, codes.InvalidArgument},
		{"NUL in custom fields", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "n",
				CustomFields: mustStruct(t, map[string]any{"k": "a\x00b"})}})
			return err
		}, codes.InvalidArgument},
		{"huge custom fields", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "n",
				CustomFields: mustStruct(t, map[string]any{"k": strings.Repeat("x", 20000)})}})
			return err
		}, codes.InvalidArgument},
		{"unknown group", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "n",
				GroupIds: []string{"0190a000-0000-7000-8000-000000000000"}}})
			return err
		}, codes.NotFound},
		{"malformed group id", func() error {
			_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "n", GroupIds: []string{"1 OR 1=1"}}})
			return err
		}, codes.InvalidArgument},
		{"malformed person id", func() error {
			_, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: "'; DROP TABLE persons;--"})
			return err
		}, codes.InvalidArgument},
		{"bad page token", func() error {
			_, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{PageToken: "!!"})
			return err
		}, codes.InvalidArgument},
		{"negative page size", func() error {
			_, err := e.persons().ListPersons(a, &backendv1.ListPersonsRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument},
		{"unknown update_mask path", func() error {
			_, err := e.groups().UpdateGroup(a, &backendv1.UpdateGroupRequest{Group: &backendv1.Group{Id: "x"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"id"}}})
			return err
		}, codes.InvalidArgument},
		{"group threshold above 1", func() error {
			_, err := e.groups().CreateGroup(a, &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "g", Threshold: 1.5}})
			return err
		}, codes.InvalidArgument},
		{"bad colour", func() error {
			_, err := e.groups().CreateGroup(a, &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "g", Color: "red"}})
			return err
		}, codes.InvalidArgument},
		{"webhook to a non-http URL", func() error {
			_, err := e.webhooks().CreateWebhook(a, &backendv1.CreateWebhookRequest{Webhook: &backendv1.Webhook{Url: "file:///etc/passwd"}})
			return err
		}, codes.InvalidArgument},
		{"short password", func() error {
			_, err := e.users().CreateUser(a, &backendv1.CreateUserRequest{Email: "x@example.com", Password: "short", Role: commonv1.Role_ROLE_VIEWER})
			return err
		}, codes.InvalidArgument},
		{"no role", func() error {
			_, err := e.users().CreateUser(a, &backendv1.CreateUserRequest{Email: "y@example.com", Password: "long enough password"})
			return err
		}, codes.InvalidArgument},
		{"retention beyond ten years", func() error {
			_, err := e.workspaces().UpdateWorkspace(a, &backendv1.UpdateWorkspaceRequest{Workspace: &backendv1.Workspace{
				Settings: &backendv1.WorkspaceSettings{RetentionDays: 4000}}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"settings.retention_days"}}})
			return err
		}, codes.InvalidArgument},
		{"photo that is not an image", func() error {
			_, err := e.persons().AddPhoto(a, &backendv1.AddPhotoRequest{PersonId: "0190a000-0000-7000-8000-000000000000", Image: []byte("GIF89a....")})
			return err
		}, codes.InvalidArgument},
		{"ROI outside the frame", func() error {
			ag, err := e.agents().CreateAgent(a, &backendv1.CreateAgentRequest{Name: "roi-agent"})
			require.NoError(t, err)
			_, err = e.agents().CreateCamera(a, &backendv1.CreateCameraRequest{Camera: &backendv1.Camera{AgentId: ag.GetAgent().GetId(), Name: "c",
				Settings: &backendv1.CameraSettings{RegionOfInterest: &commonv1.Box{X1: 0.5, Y1: 0, X2: 2, Y2: 1}}}})
			return err
		}, codes.InvalidArgument},
	}
	before := e.count("persons") + e.count("groups") + e.count("webhooks") + e.count("cameras")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, code(tc.call()))
		})
	}
	require.Equal(t, before, e.count("persons")+e.count("groups")+e.count("webhooks")+e.count("cameras"), "nothing stored half-way")

	t.Run("duplicate external id", func(t *testing.T) {
		_, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "first", ExternalId: "dup-1"}})
		require.NoError(t, err)
		n := e.count("persons")
		_, err = e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "second", ExternalId: "dup-1"}})
		require.Equal(t, codes.AlreadyExists, code(err))
		require.Equal(t, n, e.count("persons"))
		// Another workspace may use the same external id.
		bTok, _ := e.secondWorkspace("other")
		_, err = e.persons().CreatePerson(as(bTok), &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "b", ExternalId: "dup-1"}})
		require.NoError(t, err)
		// And renaming onto a taken id fails without changing the person.
		other, err := e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "third", ExternalId: "dup-2"}})
		require.NoError(t, err)
		_, err = e.persons().UpdatePerson(a, &backendv1.UpdatePersonRequest{Person: &backendv1.Person{Id: other.GetPerson().GetId(), ExternalId: "dup-1", Name: "renamed"}})
		require.Equal(t, codes.AlreadyExists, code(err))
		got, err := e.persons().GetPerson(a, &backendv1.GetPersonRequest{PersonId: other.GetPerson().GetId()})
		require.NoError(t, err)
		require.Equal(t, "third", got.GetPerson().GetName())
		require.Equal(t, other.GetPerson().GetVersion(), got.GetPerson().GetVersion())
	})
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}
