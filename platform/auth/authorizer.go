package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Authorizer implements rpc.Authorizer from the access table.
//
// Rules, by the method's declared kind:
//   - none declared: PermissionDenied for everyone (deny by default);
//   - KIND_PUBLIC: anyone;
//   - the internal service token may call every method; on workspace methods it acts as
//     an admin of the workspace named by x-vigil-workspace-id;
//   - KIND_WORKSPACE: a session or API key with at least min_role; mutating methods are
//     refused to viewers whatever min_role says;
//   - KIND_AGENT: an agent token;
//   - KIND_SYSTEM: a superuser's session;
//   - KIND_INTERNAL: only the internal token.
type Authorizer struct {
	table    *AccessTable
	resolver Resolver
	internal []byte
	audit    *Auditor
}

var _ rpc.Authorizer = (*Authorizer)(nil)

// NewAuthorizer returns an Authorizer. internalToken empty disables the internal
// credential. audit may be nil.
func NewAuthorizer(table *AccessTable, resolver Resolver, internalToken string, audit *Auditor) *Authorizer {
	a := &Authorizer{table: table, resolver: resolver, audit: audit}
	if internalToken != "" {
		a.internal = []byte(internalToken)
	}
	return a
}

// Authorize implements rpc.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	access := a.table.Lookup(fullMethod)
	p, err := a.authorize(ctx, fullMethod, access)
	if err != nil {
		if access.GetMutating() && a.audit != nil {
			// Refused attempts to change something are audited too.
			a.audit.recordDenied(ctx, fullMethod, p, err)
		}
		return nil, err
	}
	return rpc.WithPrincipal(ctx, p), nil
}

func (a *Authorizer) authorize(ctx context.Context, method string, access *commonv1.Access) (*rpc.Principal, error) {
	peerAddr := PeerAddr(ctx)
	if access == nil {
		return nil, status.Errorf(codes.PermissionDenied, "%s declares no access rule", method)
	}
	if access.GetKind() == commonv1.Access_KIND_PUBLIC {
		return &rpc.Principal{Kind: commonv1.Access_KIND_PUBLIC, PeerAddr: peerAddr}, nil
	}
	token := Credential(ctx)
	if token == "" {
		return nil, status.Error(codes.Unauthenticated, "credentials required: authorization: Bearer <token> or x-api-key")
	}
	if len(token) > maxCredentialLen {
		return nil, status.Error(codes.Unauthenticated, "unknown, expired or revoked credential")
	}
	if a.internal != nil && subtle.ConstantTimeCompare([]byte(token), a.internal) == 1 {
		return a.internalPrincipal(ctx, peerAddr)
	}
	id, err := a.resolver.Resolve(ctx, token)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "credential check: %v", err)
	}
	p := id.Principal
	p.PeerAddr = peerAddr
	switch access.GetKind() {
	case commonv1.Access_KIND_WORKSPACE:
		if p.Kind != commonv1.Access_KIND_WORKSPACE {
			return &p, status.Errorf(codes.PermissionDenied, "%s is for workspace users and API keys", method)
		}
		if p.Role < access.GetMinRole() {
			return &p, status.Errorf(codes.PermissionDenied, "%s needs role %s; the caller has %s", method, access.GetMinRole(), p.Role)
		}
		if access.GetMutating() && p.Role < commonv1.Role_ROLE_OPERATOR {
			return &p, status.Errorf(codes.PermissionDenied, "%s changes data; viewers may only read", method)
		}
		return &p, nil
	case commonv1.Access_KIND_AGENT:
		if p.Kind != commonv1.Access_KIND_AGENT {
			return &p, status.Errorf(codes.PermissionDenied, "%s is for agents", method)
		}
		return &p, nil
	case commonv1.Access_KIND_SYSTEM:
		if !id.Superuser {
			return &p, status.Errorf(codes.PermissionDenied, "%s is for platform operators", method)
		}
		p.Kind = commonv1.Access_KIND_SYSTEM
		return &p, nil
	case commonv1.Access_KIND_INTERNAL:
		return &p, status.Errorf(codes.PermissionDenied, "%s is internal to Vigil", method)
	}
	return &p, status.Errorf(codes.PermissionDenied, "%s declares an unknown access kind", method)
}

func (a *Authorizer) internalPrincipal(ctx context.Context, peerAddr string) (*rpc.Principal, error) {
	p := &rpc.Principal{Kind: commonv1.Access_KIND_INTERNAL, SubjectID: "internal", SubjectName: "vigil", PeerAddr: peerAddr}
	if ws := workspaceHeader(ctx); ws != "" {
		if len(ws) > 64 || strings.ContainsFunc(ws, func(r rune) bool { return r <= ' ' || r > '~' }) {
			return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("%s: not a valid workspace id", rpc.MetadataWorkspace))
		}
		p.WorkspaceID = ws
		p.Role = commonv1.Role_ROLE_ADMIN
	}
	return p, nil
}
