package auth

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	_ "github.com/vigilhq/vigil/gen/go/vigil/agentsync/v1"
	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

func TestAccessTable(t *testing.T) {
	table := NewAccessTable(nil)
	for _, tc := range []struct {
		method   string
		kind     commonv1.Access_Kind
		role     commonv1.Role
		mutating bool
	}{
		{"/vigil.backend.v1.AuthService/Login", commonv1.Access_KIND_PUBLIC, 0, false},
		{"/vigil.backend.v1.PersonService/ListPersons", commonv1.Access_KIND_WORKSPACE, commonv1.Role_ROLE_VIEWER, false},
		{"/vigil.backend.v1.PersonService/DeletePerson", commonv1.Access_KIND_WORKSPACE, commonv1.Role_ROLE_OPERATOR, true},
		{"/vigil.backend.v1.WorkspaceService/CreateWorkspace", commonv1.Access_KIND_SYSTEM, 0, true},
		{"/vigil.backend.v1.AuthService/Authenticate", commonv1.Access_KIND_INTERNAL, 0, false},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", commonv1.Access_KIND_PUBLIC, 0, false},
	} {
		a := table.Lookup(tc.method)
		require.NotNil(t, a, tc.method)
		require.Equal(t, tc.kind, a.GetKind(), tc.method)
		require.Equal(t, tc.role, a.GetMinRole(), tc.method)
		require.Equal(t, tc.mutating, a.GetMutating(), tc.method)
	}
	for _, m := range []string{"/vigil.backend.v1.PersonService/Nope", "/no.Such/Method", "garbage", "/grpc.health.v1.Health/Check"} {
		require.Nil(t, table.Lookup(m), m)
		require.Nil(t, table.Lookup(m), "cached miss")
	}
}

func TestDenyByDefaultAndInternalToken(t *testing.T) {
	a := NewAuthorizer(NewAccessTable(nil), nil, "s3cret-internal", nil)
	in := func(pairs ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(pairs...))
	}
	_, err := a.Authorize(in("authorization", "Bearer s3cret-internal"), "/vigil.backend.v1.PersonService/NoSuchMethod")
	require.Equal(t, codes.PermissionDenied, status.Code(err), "no rule, no entry, whoever asks")

	ctx, err := a.Authorize(in(), "/vigil.backend.v1.AuthService/Login")
	require.NoError(t, err)
	require.Equal(t, commonv1.Access_KIND_PUBLIC, rpc.PrincipalFrom(ctx).Kind)

	_, err = a.Authorize(in(), "/vigil.backend.v1.PersonService/ListPersons")
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	ctx, err = a.Authorize(in("authorization", "Bearer s3cret-internal", "x-vigil-workspace-id", "ws-1"), "/vigil.backend.v1.PersonService/DeletePerson")
	require.NoError(t, err)
	p := rpc.PrincipalFrom(ctx)
	require.Equal(t, commonv1.Access_KIND_INTERNAL, p.Kind)
	require.Equal(t, "ws-1", p.WorkspaceID)
	require.Equal(t, commonv1.Role_ROLE_ADMIN, p.Role)

	_, err = a.Authorize(in("authorization", "Bearer s3cret-internal", "x-vigil-workspace-id", "bad\x01id"), "/vigil.backend.v1.PersonService/DeletePerson")
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// Without an internal token configured, nothing passes as internal.
	none := NewAuthorizer(NewAccessTable(nil), resolverFunc(func(context.Context, string) (*Identity, error) {
		return nil, status.Error(codes.Unauthenticated, "unknown")
	}), "", nil)
	_, err = none.Authorize(in("authorization", "Bearer "), "/vigil.backend.v1.AuthService/Authenticate")
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

// resolverFunc adapts a function (a credential store the test controls).
type resolverFunc func(context.Context, string) (*Identity, error)

func (f resolverFunc) Resolve(ctx context.Context, token string) (*Identity, error) {
	return f(ctx, token)
}

func TestRolesAndKinds(t *testing.T) {
	ids := map[string]*Identity{
		"viewer":   {Principal: rpc.Principal{Kind: commonv1.Access_KIND_WORKSPACE, Role: commonv1.Role_ROLE_VIEWER, SubjectID: "u1", WorkspaceID: "w"}},
		"operator": {Principal: rpc.Principal{Kind: commonv1.Access_KIND_WORKSPACE, Role: commonv1.Role_ROLE_OPERATOR, SubjectID: "u2", WorkspaceID: "w"}},
		"admin":    {Principal: rpc.Principal{Kind: commonv1.Access_KIND_WORKSPACE, Role: commonv1.Role_ROLE_ADMIN, SubjectID: "u3", WorkspaceID: "w"}},
		"super":    {Principal: rpc.Principal{Kind: commonv1.Access_KIND_WORKSPACE, Role: commonv1.Role_ROLE_ADMIN, SubjectID: "u4", WorkspaceID: "w"}, Superuser: true},
		"agent":    {Principal: rpc.Principal{Kind: commonv1.Access_KIND_AGENT, SubjectID: "a1", WorkspaceID: "w"}},
	}
	a := NewAuthorizer(NewAccessTable(nil), resolverFunc(func(_ context.Context, tok string) (*Identity, error) {
		if id, ok := ids[tok]; ok {
			return id, nil
		}
		return nil, status.Error(codes.Unauthenticated, "unknown")
	}), "", nil)
	const (
		read   = "/vigil.backend.v1.PersonService/ListPersons"
		write  = "/vigil.backend.v1.PersonService/CreatePerson"
		admin  = "/vigil.backend.v1.ApiKeyService/CreateApiKey"
		system = "/vigil.backend.v1.WorkspaceService/CreateWorkspace"
		intern = "/vigil.backend.v1.AuthService/Authenticate"
		agent  = "/vigil.agentsync.v1.AgentSyncService/Connect"
	)
	allowed := map[string][]string{
		"viewer":   {read},
		"operator": {read, write},
		"admin":    {read, write, admin},
		"super":    {read, write, admin, system},
		"agent":    {agent},
	}
	for tok, ok := range allowed {
		for _, m := range []string{read, write, admin, system, intern, agent} {
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
			out, err := a.Authorize(ctx, m)
			want := false
			for _, o := range ok {
				want = want || o == m
			}
			if want {
				require.NoError(t, err, "%s on %s", tok, m)
				require.Equal(t, ids[tok].Principal.SubjectID, rpc.PrincipalFrom(out).SubjectID)
			} else {
				require.Equal(t, codes.PermissionDenied, status.Code(err), "%s on %s", tok, m)
			}
		}
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-api-key", "admin"))
	out, err := a.Authorize(ctx, admin)
	require.NoError(t, err)
	require.Equal(t, "u3", rpc.PrincipalFrom(out).SubjectID)
	out, err = a.Authorize(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer super")), system)
	require.NoError(t, err)
	require.Equal(t, commonv1.Access_KIND_SYSTEM, rpc.PrincipalFrom(out).Kind)
}

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCache(30*time.Second, 3)
	c.now = func() time.Time { return now }
	id := func(subject string, expire time.Time) *Identity {
		return &Identity{Principal: rpc.Principal{SubjectID: subject}, Expire: expire}
	}
	c.Put("tok-a", id("s1", time.Time{}))
	c.Put("tok-b", id("s1", time.Time{}))
	c.Put("tok-c", id("s2", now.Add(5*time.Second)))
	_, ok := c.Get("tok-a")
	require.True(t, ok)

	now = now.Add(6 * time.Second)
	_, ok = c.Get("tok-c")
	require.False(t, ok, "never past the credential's expiry")

	c.InvalidateSubject(context.Background(), "s1")
	_, okA := c.Get("tok-a")
	_, okB := c.Get("tok-b")
	require.False(t, okA || okB, "every credential of the subject")

	c.Put("tok-a", id("s1", time.Time{}))
	now = now.Add(31 * time.Second)
	_, ok = c.Get("tok-a")
	require.False(t, ok, "TTL")

	for _, tok := range []string{"1", "2", "3", "4", "5"} {
		c.Put(tok, id("s"+tok, time.Time{}))
	}
	require.LessOrEqual(t, c.Len(), 3, "bounded")
}

func TestCredentialAndPeer(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "bearer  abc "))
	require.Equal(t, "abc", Credential(ctx))
	ctx = metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Basic abc"))
	require.Empty(t, Credential(ctx))

	loop := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-forwarded-for", "203.0.113.7, 10.0.0.1")),
		&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}})
	require.Equal(t, "10.0.0.1", PeerAddr(loop), "behind our own proxies, the address the outermost one saw")
	spoofed := peer.NewContext(metadata.NewIncomingContext(context.Background(),
		metadata.Pairs("x-forwarded-for", "203.0.113.7, 198.51.100.9, 127.0.0.1")),
		&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}})
	require.Equal(t, "198.51.100.9", PeerAddr(spoofed), "an address the client wrote itself is not believed")
	local := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-forwarded-for", "127.0.0.1")),
		&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}})
	require.Equal(t, "127.0.0.1", PeerAddr(local), "a client on this machine")
	remote := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-forwarded-for", "203.0.113.7")),
		&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(198, 51, 100, 1), Port: 5000}})
	require.Equal(t, "198.51.100.1:5000", PeerAddr(remote), "a remote peer cannot claim another address")
}

func TestTarget(t *testing.T) {
	require.Equal(t, "person/p1", Target(&backendv1.DeletePersonRequest{PersonId: "p1", RequestId: "r"}, nil))
	require.Equal(t, "person/p2", Target(&backendv1.UpdatePersonRequest{Person: &backendv1.Person{Id: "p2"}}, nil))
	require.Equal(t, "person/p3", Target(&backendv1.CreatePersonRequest{Person: &backendv1.Person{Name: "x"}},
		&backendv1.CreatePersonResponse{Person: &backendv1.Person{Id: "p3"}}), "creations: from the response")
	require.Empty(t, Target(&backendv1.LogoutRequest{}, nil))
}
