package backend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform/auth"

	// Every Vigil contract, so the walk covers the whole registry, hosted here or not.
	_ "github.com/vigilhq/vigil/gen/go/vigil/activitymatcher/v1"
	_ "github.com/vigilhq/vigil/gen/go/vigil/agentsync/v1"
	_ "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	_ "github.com/vigilhq/vigil/gen/go/vigil/extractor/v1"
	_ "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	_ "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	_ "github.com/vigilhq/vigil/gen/go/vigil/verifymatcher/v1"
)

// vigilMethods lists every RPC of every vigil.* service in the proto registry.
func vigilMethods(t *testing.T) []protoreflect.MethodDescriptor {
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "vigil.") {
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, sd.Methods().Get(j))
			}
		}
		return true
	})
	require.NotEmpty(t, out)
	return out
}

func fullMethod(m protoreflect.MethodDescriptor) string {
	return "/" + string(m.Parent().FullName()) + "/" + string(m.Name())
}

// TestEveryMethodDeclaresAccess: the access table is complete — no RPC anywhere relies
// on deny-by-default by accident.
func TestEveryMethodDeclaresAccess(t *testing.T) {
	table := auth.NewAccessTable(nil)
	for _, m := range vigilMethods(t) {
		require.NotNil(t, table.Lookup(fullMethod(m)), "%s has no vigil.common.v1.access option", fullMethod(m))
	}
	require.Nil(t, table.Lookup("/vigil.backend.v1.PersonService/NoSuchMethod"))
}

// TestViewerCannotMutateAnything walks every RPC of every service in the registry and
// asks the process's authorizer (the one the gRPC server calls for every service) on
// behalf of a viewer, an operator, an agent, and nobody. Methods hosted by this process
// are also called over the network with an empty request, to prove the server applies
// the decision.
func TestViewerCannotMutateAnything(t *testing.T) {
	e := newEnv(t)
	viewer := e.userWithRole(commonv1.Role_ROLE_VIEWER)
	operator := e.userWithRole(commonv1.Role_ROLE_OPERATOR)
	table := auth.NewAccessTable(nil)
	incoming := func(token string) context.Context {
		ctx := context.Background()
		if token != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
		}
		return ctx
	}
	hosted := map[string]bool{}
	for _, name := range []string{"vigil.backend.v1.", "vigil.licensing.v1.", "vigil.matcher.v1."} {
		hosted[name] = true
	}
	isHosted := func(m protoreflect.MethodDescriptor) bool {
		return hosted[strings.TrimSuffix(string(m.Parent().FullName()), string(m.Parent().Name()))]
	}

	for _, m := range vigilMethods(t) {
		method := fullMethod(m)
		access := table.Lookup(method)
		t.Run(strings.TrimPrefix(method, "/"), func(t *testing.T) {
			public := access.GetKind() == commonv1.Access_KIND_PUBLIC
			viewerMayCall := access.GetKind() == commonv1.Access_KIND_WORKSPACE && !access.GetMutating() &&
				access.GetMinRole() <= commonv1.Role_ROLE_VIEWER
			operatorMayCall := access.GetKind() == commonv1.Access_KIND_WORKSPACE && access.GetMinRole() <= commonv1.Role_ROLE_OPERATOR

			_, err := e.authz.Authorize(incoming(viewer), method)
			if public || viewerMayCall {
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.PermissionDenied, status.Code(err))
			}
			if access.GetMutating() && !public {
				require.Error(t, err, "a viewer must never reach a mutating method")
			}
			_, err = e.authz.Authorize(incoming(operator), method)
			if public || operatorMayCall {
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.PermissionDenied, status.Code(err))
			}
			_, err = e.authz.Authorize(incoming(""), method)
			if public {
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.Unauthenticated, status.Code(err))
			}

			// Logout would end the viewer's session used by the rest of the walk.
			if !isHosted(m) || m.IsStreamingClient() || m.IsStreamingServer() || m.Name() == "Logout" {
				return
			}
			req := dynamicpb.NewMessage(m.Input())
			resp := dynamicpb.NewMessage(m.Output())
			err = e.conn.Invoke(as(viewer), method, req, resp)
			if public || viewerMayCall {
				require.NotContains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated}, status.Code(err), "%v", err)
			} else {
				require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
			}
		})
	}
	require.Zero(t, e.count("persons")+e.count("groups")+e.count("agents")+e.count("webhooks")+e.count("api_keys"),
		"the walk changed nothing")
}
