package backend_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/services/backend"
)

func TestRequestIDReplay(t *testing.T) {
	e := newEnv(t)
	a := e.admin()

	req := &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "Once", ExternalId: "once-1"}, RequestId: "req-1"}
	first, err := e.persons().CreatePerson(a, req)
	require.NoError(t, err)
	again, err := e.persons().CreatePerson(a, req)
	require.NoError(t, err, "a replay is not a duplicate")
	require.Equal(t, first.GetPerson().GetId(), again.GetPerson().GetId())
	require.Equal(t, first.GetPerson().GetVersion(), again.GetPerson().GetVersion())
	require.Equal(t, 1, e.count("persons"))

	_, err = e.persons().CreatePerson(a, &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "Other"}, RequestId: "req-1"})
	require.Equal(t, codes.InvalidArgument, code(err), "same request id, different request")

	t.Run("concurrent replays run once", func(t *testing.T) {
		req := &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "race"}, RequestId: "req-race"}
		var wg sync.WaitGroup
		ids := make([]string, 8)
		errs := make([]error, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := e.groups().CreateGroup(a, req)
				ids[i], errs[i] = resp.GetGroup().GetId(), err
			}()
		}
		wg.Wait()
		for i := range ids {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i])
		}
		require.Equal(t, 1, e.count("groups"))
	})

	t.Run("a failed call does not consume the id", func(t *testing.T) {
		bad := &backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "dup", ExternalId: "once-1"}, RequestId: "req-2"}
		_, err := e.persons().CreatePerson(a, bad)
		require.Equal(t, codes.AlreadyExists, code(err))
		_, err = e.persons().CreatePerson(a, bad)
		require.Equal(t, codes.AlreadyExists, code(err), "re-run, not replayed")
	})

	t.Run("secrets are not stored for replay", func(t *testing.T) {
		req := &backendv1.CreateApiKeyRequest{Name: "replayed", Role: commonv1.Role_ROLE_VIEWER, RequestId: "req-key"}
		first, err := e.keys().CreateApiKey(a, req)
		require.NoError(t, err)
		require.NotEmpty(t, first.GetSecret())
		again, err := e.keys().CreateApiKey(a, req)
		require.NoError(t, err)
		require.Equal(t, first.GetApiKey().GetId(), again.GetApiKey().GetId())
		require.Empty(t, again.GetSecret())
	})

	t.Run("request ids are per workspace", func(t *testing.T) {
		bTok, _ := e.secondWorkspace("b")
		resp, err := e.persons().CreatePerson(as(bTok), req)
		require.NoError(t, err)
		require.NotEqual(t, first.GetPerson().GetId(), resp.GetPerson().GetId())
	})
}

func TestSweepForgetsOldRequestIDs(t *testing.T) {
	e := newEnv(t)
	req := &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "old"}, RequestId: "req-old"}
	_, err := e.groups().CreateGroup(e.admin(), req)
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(context.Background(), `UPDATE idempotency_keys SET create_time = now() - interval '25 hours'`)
	require.NoError(t, err)
	n, err := backend.SweepForTest(context.Background(), e.db.Pool)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	_, err = e.groups().CreateGroup(e.admin(), req)
	require.Equal(t, codes.AlreadyExists, code(err), "no longer a replay: a new call, refused as a duplicate name")
}
