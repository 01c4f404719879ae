package backend

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// scope is who calls and in which workspace. Every workspace query filters on
// scope.workspace, which comes from the caller's credential (or, for Vigil's own
// services, the x-vigil-workspace-id metadata), never from the request body.
type scope struct {
	workspace uuid.UUID
	principal *rpc.Principal
}

// workspaceScope returns the caller's workspace scope.
func workspaceScope(ctx context.Context) (scope, error) {
	p := rpc.PrincipalFrom(ctx)
	if p == nil {
		return scope{}, fmt.Errorf("no principal: %w", ErrUnauthenticated)
	}
	if p.WorkspaceID == "" {
		return scope{}, invalid(rpc.MetadataWorkspace, "required for %s callers", p.Kind)
	}
	ws, err := uuid.Parse(p.WorkspaceID)
	if err != nil {
		return scope{}, invalid(rpc.MetadataWorkspace, "not a valid id")
	}
	return scope{workspace: ws, principal: p}, nil
}

// key scopes request ids: per workspace.
func (s scope) key() string { return s.workspace.String() }

// systemKey scopes request ids of platform-level calls.
const systemKey = "system"

// isInternal reports whether the caller is one of Vigil's own services.
func (s scope) isInternal() bool {
	return s.principal != nil && s.principal.Kind == commonv1.Access_KIND_INTERNAL
}
