package rpc

import (
	"context"

	"google.golang.org/grpc"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	// Kind is the kind of credential that authenticated the caller.
	Kind commonv1.Access_Kind
	// WorkspaceID is the workspace the caller acts in; empty for internal and system callers,
	// which name the workspace in each request.
	WorkspaceID string
	// Role within WorkspaceID (workspace principals only).
	Role commonv1.Role
	// SubjectID identifies the user, API key or agent; "internal" for Vigil's services.
	SubjectID string
	// SubjectName is a readable name for logs and the audit log (email, key name, agent name).
	SubjectName string
	// PeerAddr is where the request came from (for the audit log).
	PeerAddr string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of the request in ctx, or nil outside an authenticated call.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Authorizer decides whether the caller of ctx may call fullMethod ("/pkg.Service/Method")
// according to the method's declared vigil.common.v1.access option, and returns a context
// carrying the Principal. Errors are gRPC statuses (Unauthenticated, PermissionDenied).
// The platform's gRPC server applies it to every unary and streaming call.
type Authorizer interface {
	Authorize(ctx context.Context, fullMethod string) (context.Context, error)
}

// Metadata keys understood by the platform's authorizer.
const (
	// MetadataAuthorization carries "Bearer <token>": a session token, an API key, an agent
	// token, or the internal service token.
	MetadataAuthorization = "authorization"
	// MetadataWorkspace lets an internal caller (service token) act within a workspace, as an
	// admin of it, when calling workspace methods (e.g. the task worker importing persons).
	MetadataWorkspace = "x-vigil-workspace-id"
)

// Auditor records every mutating call (who, workspace, method, target, outcome) in the
// audit log. The platform's gRPC server runs its interceptors on every call, right after
// authorization, so each component's changes are audited without the component doing
// anything.
type Auditor interface {
	UnaryServerInterceptor() grpc.UnaryServerInterceptor
	StreamServerInterceptor() grpc.StreamServerInterceptor
}
