package backend_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

func code(err error) codes.Code { return status.Code(err) }

func TestLoginSessionsAndKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	who, err := e.auth().WhoAmI(e.admin(), &backendv1.WhoAmIRequest{})
	require.NoError(t, err)
	require.Equal(t, commonv1.Role_ROLE_ADMIN, who.GetRole())
	require.True(t, who.GetSuperuser())
	require.Equal(t, e.workspace, who.GetWorkspaceId())

	for _, tc := range []struct {
		name, email, password string
		want                  codes.Code
	}{
		{"wrong password", e.adminEmail, "not the password", codes.Unauthenticated},
		{"unknown email", "nobody@example.com", "whatever password", codes.Unauthenticated},
		{"empty password", e.adminEmail, "", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.auth().Login(ctx, &backendv1.LoginRequest{Email: tc.email, Password: tc.password})
			require.Equal(t, tc.want, code(err))
		})
	}

	t.Run("no or bad credentials", func(t *testing.T) {
		_, err := e.persons().ListPersons(ctx, &backendv1.ListPersonsRequest{})
		require.Equal(t, codes.Unauthenticated, code(err))
		_, err = e.persons().ListPersons(as("vgs_forged"), &backendv1.ListPersonsRequest{})
		require.Equal(t, codes.Unauthenticated, code(err))
	})

	t.Run("api key: shown once, x-api-key or bearer, revoked at once", func(t *testing.T) {
		created, err := e.keys().CreateApiKey(e.admin(), &backendv1.CreateApiKeyRequest{Name: "ci", Role: commonv1.Role_ROLE_OPERATOR})
		require.NoError(t, err)
		secret := created.GetSecret()
		require.NotEmpty(t, secret)
		got, err := e.keys().GetApiKey(e.admin(), &backendv1.GetApiKeyRequest{ApiKeyId: created.GetApiKey().GetId()})
		require.NoError(t, err)
		require.Equal(t, created.GetApiKey().GetPrefix(), got.GetApiKey().GetPrefix())

		viaHeader := metadata.AppendToOutgoingContext(ctx, "x-api-key", secret)
		_, err = e.persons().CreatePerson(viaHeader, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "by key"}})
		require.NoError(t, err)
		_, err = e.persons().ListPersons(as(secret), &backendv1.ListPersonsRequest{})
		require.NoError(t, err)
		// An operator key cannot administer.
		_, err = e.keys().ListApiKeys(as(secret), &backendv1.ListApiKeysRequest{})
		require.Equal(t, codes.PermissionDenied, code(err))

		_, err = e.keys().RevokeApiKey(e.admin(), &backendv1.RevokeApiKeyRequest{ApiKeyId: created.GetApiKey().GetId()})
		require.NoError(t, err)
		_, err = e.persons().ListPersons(as(secret), &backendv1.ListPersonsRequest{})
		require.Equal(t, codes.Unauthenticated, code(err), "a revoked key stops working at once, cache or not")

		var stored int
		require.NoError(t, e.db.Pool.QueryRow(ctx, "SELECT count(*) FROM api_keys WHERE prefix = $1 AND secret_hash <> $2",
			created.GetApiKey().GetPrefix(), []byte(secret)).Scan(&stored))
		require.Equal(t, 1, stored, "the key is stored, hashed")
	})

	t.Run("expired key", func(t *testing.T) {
		_, err := e.keys().CreateApiKey(e.admin(), &backendv1.CreateApiKeyRequest{Name: "past", Role: commonv1.Role_ROLE_VIEWER,
			ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))})
		require.Equal(t, codes.InvalidArgument, code(err))
		created, err := e.keys().CreateApiKey(e.admin(), &backendv1.CreateApiKeyRequest{Name: "short", Role: commonv1.Role_ROLE_VIEWER,
			ExpireTime: timestamppb.New(time.Now().Add(1500 * time.Millisecond))})
		require.NoError(t, err)
		_, err = e.persons().ListPersons(as(created.GetSecret()), &backendv1.ListPersonsRequest{})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := e.persons().ListPersons(as(created.GetSecret()), &backendv1.ListPersonsRequest{})
			return code(err) == codes.Unauthenticated
		}, 10*time.Second, 100*time.Millisecond, "the cache never outlives the key's expiry")
	})

	t.Run("logout ends the session", func(t *testing.T) {
		tok := e.userWithRole(commonv1.Role_ROLE_VIEWER)
		_, err := e.auth().Logout(as(tok), &backendv1.LogoutRequest{})
		require.NoError(t, err)
		_, err = e.persons().ListPersons(as(tok), &backendv1.ListPersonsRequest{})
		require.Equal(t, codes.Unauthenticated, code(err))
	})

	t.Run("role change applies at once", func(t *testing.T) {
		email := "demoted@example.com"
		u, err := e.users().CreateUser(e.admin(), &backendv1.CreateUserRequest{Email: email, Password: "correct horse battery", Role: commonv1.Role_ROLE_OPERATOR})
		require.NoError(t, err)
		login, err := e.auth().Login(ctx, &backendv1.LoginRequest{Email: email, Password: "correct horse battery"})
		require.NoError(t, err)
		_, err = e.groups().CreateGroup(as(login.GetSessionToken()), &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "ops"}})
		require.NoError(t, err)
		_, err = e.users().UpdateUser(e.admin(), &backendv1.UpdateUserRequest{UserId: u.GetUser().GetId(), Role: commonv1.Role_ROLE_VIEWER})
		require.NoError(t, err)
		_, err = e.groups().CreateGroup(as(login.GetSessionToken()), &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "ops2"}})
		require.Equal(t, codes.Unauthenticated, code(err), "a role change ends the user's sessions")
	})

	t.Run("last admin stays", func(t *testing.T) {
		who, err := e.auth().WhoAmI(e.admin(), &backendv1.WhoAmIRequest{})
		require.NoError(t, err)
		_, err = e.users().DeleteUser(e.admin(), &backendv1.DeleteUserRequest{UserId: who.GetSubjectId()})
		require.Equal(t, codes.FailedPrecondition, code(err))
	})
}

func TestBootstrapOnce(t *testing.T) {
	e := newEnv(t)
	first := e.out.String()
	e.out.Reset()
	e.start() // a second process (or a restart) on the same database
	require.Empty(t, e.out.String(), "credentials are printed on the first start only")
	require.Contains(t, first, "admin@vigil.local")
	require.Equal(t, 1, e.count("users"))
	require.Equal(t, 1, e.count("workspaces"))
}

// Keyset paging of a list: pages of two, newest first, each key once, and a last page
// without a next token; a malformed token is INVALID_ARGUMENT.
func TestListAPIKeysPages(t *testing.T) {
	e := newEnv(t)
	var created []string
	for i := range 5 {
		k, err := e.keys().CreateApiKey(e.admin(), &backendv1.CreateApiKeyRequest{Name: fmt.Sprintf("k%d", i), Role: commonv1.Role_ROLE_VIEWER})
		require.NoError(t, err)
		created = append(created, k.GetApiKey().GetId())
	}
	var seen []string
	token := ""
	for pages := 1; ; pages++ {
		page, err := e.keys().ListApiKeys(e.admin(), &backendv1.ListApiKeysRequest{PageSize: 2, PageToken: token})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.GetApiKeys()), 2)
		for _, k := range page.GetApiKeys() {
			seen = append(seen, k.GetId())
		}
		if token = page.GetNextPageToken(); token == "" {
			require.Equal(t, 3, pages)
			break
		}
	}
	slices.Reverse(created)
	require.Equal(t, created, seen, "every key once, newest first")

	_, err := e.keys().ListApiKeys(e.admin(), &backendv1.ListApiKeysRequest{PageToken: "!!"})
	require.Equal(t, codes.InvalidArgument, code(err))
}
