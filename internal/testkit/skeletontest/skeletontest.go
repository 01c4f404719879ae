// Package skeletontest checks a component whose contract is designed but whose logic
// belongs to a later stage: its real fx module starts, its health reports SERVING, every
// RPC of its contract (unary or streaming) answers UNIMPLEMENTED through the production
// interceptor chain and, over REST, HTTP 501 — never made-up data — and every RPC declares
// its access rule.
package skeletontest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/internal/testkit/grpctest"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Component is a skeleton component under test.
type Component struct {
	// Module is the component's fx module; ServiceName its proto service's full name.
	Module      fx.Option
	ServiceName string
	// RESTPath is a GET path of one of its HTTP bindings; empty when the contract has none.
	RESTPath string
}

// Run runs every check on c, each as a subtest.
func Run(t *testing.T, c Component) {
	t.Run("HealthServing", func(t *testing.T) { healthServing(t, c) })
	t.Run("EveryRPCUnimplemented", func(t *testing.T) { everyRPCUnimplemented(t, c) })
	t.Run("EveryRPCDeclaresAccess", func(t *testing.T) { everyRPCDeclaresAccess(t, c) })
	t.Run("REST", func(t *testing.T) { gatewayAnswersNotImplemented(t, c) })
}

// allowAll admits every call as an internal caller: these tests are about the component,
// not about access rules (the authorizer's own tests walk the access table).
type allowAll struct{}

func (allowAll) Authorize(ctx context.Context, _ string) (context.Context, error) {
	return rpc.WithPrincipal(ctx, &rpc.Principal{Kind: commonv1.Access_KIND_INTERNAL, SubjectID: "internal"}), nil
}

// moduleService starts the component's real fx module and returns the rpc.Service it
// contributes to the process.
func moduleService(t *testing.T, c Component) rpc.Service {
	t.Helper()
	var services []rpc.Service
	app := fxtest.New(t,
		fx.Supply(slog.New(slog.DiscardHandler)),
		c.Module,
		fx.Invoke(fx.Annotate(func(s []rpc.Service) { services = s }, fx.ParamTags(rpc.GroupTag))),
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	require.Len(t, services, 1)
	require.Equal(t, c.ServiceName, services[0].Name)
	return services[0]
}

func serviceDescriptor(t *testing.T, c Component) protoreflect.ServiceDescriptor {
	t.Helper()
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(c.ServiceName))
	require.NoError(t, err)
	sd, ok := d.(protoreflect.ServiceDescriptor)
	require.True(t, ok)
	require.Positive(t, sd.Methods().Len())
	return sd
}

func newMessage(t *testing.T, md protoreflect.MessageDescriptor) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	require.NoError(t, err)
	return mt.New().Interface()
}

func healthServing(t *testing.T, c Component) {
	conn := grpctest.New(t, grpctest.Options{Authorizer: allowAll{}}, moduleService(t, c))
	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: c.ServiceName})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}

// Every RPC of the contract, unary or streaming, answers UNIMPLEMENTED through the real
// registration and the production interceptor chain.
func everyRPCUnimplemented(t *testing.T, c Component) {
	conn := grpctest.New(t, grpctest.Options{Authorizer: allowAll{}}, moduleService(t, c))
	sd := serviceDescriptor(t, c)
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		t.Run(string(m.Name()), func(t *testing.T) {
			method := "/" + string(sd.FullName()) + "/" + string(m.Name())
			in, out := newMessage(t, m.Input()), newMessage(t, m.Output())
			var err error
			if !m.IsStreamingClient() && !m.IsStreamingServer() {
				err = conn.Invoke(t.Context(), method, in, out)
			} else {
				var stream grpc.ClientStream
				stream, err = conn.NewStream(t.Context(), &grpc.StreamDesc{
					ClientStreams: m.IsStreamingClient(), ServerStreams: m.IsStreamingServer(),
				}, method)
				require.NoError(t, err)
				if err = stream.SendMsg(in); err == nil || err == io.EOF {
					require.NoError(t, stream.CloseSend())
					err = stream.RecvMsg(out)
				}
			}
			require.Equal(t, codes.Unimplemented, status.Code(err), "got %v", err)
		})
	}
}

// Every RPC declares who may call it; a method without the option is refused to everyone.
func everyRPCDeclaresAccess(t *testing.T, c Component) {
	sd := serviceDescriptor(t, c)
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		access, ok := proto.GetExtension(m.Options(), commonv1.E_Access).(*commonv1.Access)
		require.True(t, ok, "%s", m.FullName())
		require.NotEqual(t, commonv1.Access_KIND_UNSPECIFIED, access.GetKind(), "%s has no access option", m.FullName())
	}
}

// The REST bindings reach the same server through the gateway mux; an unimplemented RPC
// is HTTP 501, never a made-up body.
func gatewayAnswersNotImplemented(t *testing.T, c Component) {
	svc := moduleService(t, c)
	if c.RESTPath == "" {
		require.Nil(t, svc.Gateway, "the contract has no HTTP bindings")
		return
	}
	require.NotNil(t, svc.Gateway, "the service has HTTP bindings")
	conn := grpctest.New(t, grpctest.Options{Authorizer: allowAll{}}, svc)
	mux := runtime.NewServeMux()
	require.NoError(t, svc.Gateway(t.Context(), mux, conn))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+c.RESTPath, strings.NewReader(``))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotImplemented, resp.StatusCode)
}
