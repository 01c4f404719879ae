package auth

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// resolveTimeout bounds one credential lookup at the backend.
const resolveTimeout = 10 * time.Second

// Resolver turns a credential into an Identity.
type Resolver interface {
	Resolve(ctx context.Context, token string) (*Identity, error)
}

// BackendResolver asks the backend's internal AuthService.Authenticate over rpc.Peers,
// so credential resolution is the same whether the backend runs in this process or
// another; answers are cached.
type BackendResolver struct {
	peers   rpc.Peers
	cache   *Cache
	metrics *Metrics
}

// NewBackendResolver returns a resolver reading through cache; metrics may be nil.
func NewBackendResolver(peers rpc.Peers, cache *Cache, metrics *Metrics) *BackendResolver {
	return &BackendResolver{peers: peers, cache: cache, metrics: metrics}
}

// Resolve implements Resolver. Errors are statuses: Unauthenticated for a credential
// the backend does not accept, Unavailable when the backend cannot be asked.
func (r *BackendResolver) Resolve(ctx context.Context, token string) (*Identity, error) {
	if id, ok := r.cache.Get(token); ok {
		r.metrics.lookup("cache_hit")
		return id, nil
	}
	conn, err := r.peers.Conn("backend")
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "credential check: %v", err)
	}
	// Incoming metadata does not travel (gRPC sends only outgoing); the peer connection
	// adds the internal token. Bounded: a hung backend must not hang every call.
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	resp, err := backendv1.NewAuthServiceClient(conn).Authenticate(ctx, &backendv1.AuthenticateRequest{Token: token})
	if err != nil {
		switch status.Code(err) {
		case codes.Unauthenticated, codes.InvalidArgument, codes.NotFound:
			r.metrics.lookup("rejected")
			return nil, status.Error(codes.Unauthenticated, "unknown, expired or revoked credential")
		case codes.Canceled, codes.DeadlineExceeded:
			r.metrics.lookup("error")
			return nil, err
		}
		r.metrics.lookup("error")
		return nil, status.Errorf(codes.Unavailable, "credential check: %v", status.Convert(err).Message())
	}
	id := &Identity{
		Principal: rpc.Principal{
			Kind: resp.GetKind(), WorkspaceID: resp.GetWorkspaceId(), Role: resp.GetRole(),
			SubjectID: resp.GetSubjectId(), SubjectName: resp.GetSubjectName(),
		},
		Superuser: resp.GetSuperuser(),
	}
	if resp.ExpireTime != nil {
		id.Expire = resp.ExpireTime.AsTime()
	}
	if id.Principal.SubjectID == "" {
		return nil, fmt.Errorf("backend returned an identity without a subject")
	}
	r.cache.Put(token, id)
	r.metrics.lookup("backend")
	return id, nil
}
