package backend_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform/redistest"
)

// TestRevocationReachesEveryReplica: two processes share the database and Redis (as
// replicas do). A key cached by replica 2 is revoked on replica 1 and stops working on
// replica 2 at once, well inside the cache TTL.
func TestRevocationReachesEveryReplica(t *testing.T) {
	e := newEnvWithRedis(t, redistest.Addr)
	one := e.conn
	created, err := backendv1.NewApiKeyServiceClient(one).CreateApiKey(e.admin(), &backendv1.CreateApiKeyRequest{Name: "shared", Role: commonv1.Role_ROLE_VIEWER})
	require.NoError(t, err)

	e.start() // replica 2; e.conn now points at it
	two := backendv1.NewPersonServiceClient(e.conn)
	_, err = two.ListPersons(as(created.GetSecret()), &backendv1.ListPersonsRequest{})
	require.NoError(t, err, "replica 2 has resolved and cached the key")

	_, err = backendv1.NewApiKeyServiceClient(one).RevokeApiKey(e.admin(), &backendv1.RevokeApiKeyRequest{ApiKeyId: created.GetApiKey().GetId()})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := two.ListPersons(as(created.GetSecret()), &backendv1.ListPersonsRequest{})
		return code(err) == codes.Unauthenticated
	}, 5*time.Second, 10*time.Millisecond, "broadcast invalidation, not the 30 s TTL")
}
