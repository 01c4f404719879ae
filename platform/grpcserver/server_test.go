package grpcserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/testkit/grpctest"
	"github.com/vigilhq/vigil/internal/testkit/testsvc"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
	vlog "github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// syncBuffer collects log lines written from server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		out = append(out, m)
	}
	return out
}

func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, rpc.MetadataAuthorization, "Bearer "+tok)
}

func TestDenyByDefaultWithoutAuthorizer(t *testing.T) {
	conn := grpctest.New(t, grpctest.Options{}, testsvc.New().Service())
	ctx := context.Background()

	_, err := testpb.NewTestServiceClient(conn).EmptyCall(withToken(ctx, "anything"), &testpb.Empty{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	stream, err := testpb.NewTestServiceClient(conn).FullDuplexCall(ctx)
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.Unauthenticated, status.Code(err), "streams are guarded too")

	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: testsvc.Name})
	require.NoError(t, err, "health is always answered")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
}

func TestInterceptorChain(t *testing.T) {
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	conn := grpctest.New(t, grpctest.Options{
		Authorizer: testsvc.TokenAuthorizer{Token: "good"},
		Log:        vlog.New(&logs, slog.LevelDebug),
		Registry:   reg,
	}, testsvc.New().Service())
	client := testpb.NewTestServiceClient(conn)
	ctx := context.Background()

	tests := []struct {
		name     string
		token    string
		body     string
		status   *testpb.EchoStatus
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "ok", token: "good", body: "hello", wantCode: codes.OK},
		{name: "wrong token", token: "bad", body: "hello", wantCode: codes.Unauthenticated},
		{name: "status passes through", token: "good", status: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "person p1"}, wantCode: codes.NotFound, wantMsg: "person p1"},
		{name: "plain error becomes Internal", token: "good", body: testsvc.PlainError, wantCode: codes.Internal, wantMsg: "internal error"},
		{name: "panic becomes Internal", token: "good", body: testsvc.Panic, wantCode: codes.Internal, wantMsg: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.UnaryCall(withToken(ctx, tt.token), &testpb.SimpleRequest{
				Payload: &testpb.Payload{Body: []byte(tt.body)}, ResponseStatus: tt.status,
			})
			require.Equal(t, tt.wantCode, status.Code(err), "err: %v", err)
			if tt.wantCode == codes.OK {
				require.Equal(t, tt.body, string(resp.GetPayload().GetBody()))
				require.Equal(t, "tester", resp.GetUsername(), "principal set by the authorizer reaches the handler")
			} else if tt.wantMsg != "" {
				require.Equal(t, tt.wantMsg, status.Convert(err).Message())
			}
		})
	}

	// The process survived the panic.
	_, err := client.EmptyCall(withToken(ctx, "good"), &testpb.Empty{})
	require.NoError(t, err)

	// The full error of the plain failure is logged once, with method and code.
	var unmapped, panics int
	for _, l := range logs.lines(t) {
		switch l["msg"] {
		case "unmapped error":
			unmapped++
			require.Equal(t, "/grpc.testing.TestService/UnaryCall", l["method"])
			require.Equal(t, "Internal", l["code"])
			require.Contains(t, l["err"], "secret detail")
			require.NotEmpty(t, l["request_id"])
		case "panic in grpc handler":
			panics++
			require.Contains(t, l["stack"], "testsvc")
		}
	}
	require.Equal(t, 1, unmapped)
	require.Equal(t, 1, panics)

	// Metrics by method and code.
	require.Equal(t, 2.0, (counter(t, reg, "/grpc.testing.TestService/UnaryCall", "Internal")))
	require.Equal(t, 1.0, (counter(t, reg, "/grpc.testing.TestService/UnaryCall", "Unauthenticated")))
	require.Equal(t, 1.0, (counter(t, reg, "/grpc.testing.TestService/UnaryCall", "NotFound")))
}

func counter(t *testing.T, reg *prometheus.Registry, method, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "vigil_grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["method"] == method && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestRequestID(t *testing.T) {
	var logs syncBuffer
	conn := grpctest.New(t, grpctest.Options{
		Authorizer: testsvc.TokenAuthorizer{Token: "good"},
		Log:        vlog.New(&logs, slog.LevelDebug),
	}, testsvc.New().Service())
	client := testpb.NewTestServiceClient(conn)

	// Given by the caller: kept, echoed, seen by the handler, in the log line.
	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(withToken(context.Background(), "good"), "x-request-id", "caller-id-1")
	_, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&hdr))
	require.NoError(t, err)
	require.Equal(t, []string{"caller-id-1"}, hdr.Get("x-request-id"))
	require.Equal(t, []string{"caller-id-1"}, hdr.Get("x-seen-request-id"))

	// Missing: generated, and the handler sees the same one.
	hdr = nil
	_, err = client.EmptyCall(withToken(context.Background(), "good"), &testpb.Empty{}, grpc.Header(&hdr))
	require.NoError(t, err)
	require.Len(t, hdr.Get("x-request-id"), 1)
	require.Len(t, hdr.Get("x-request-id")[0], 36)
	require.Equal(t, hdr.Get("x-request-id"), hdr.Get("x-seen-request-id"))

	found := false
	for _, l := range logs.lines(t) {
		if l["msg"] == "grpc call" && l["request_id"] == "caller-id-1" {
			found = true
			require.Equal(t, "OK", l["code"])
			require.Equal(t, "/grpc.testing.TestService/EmptyCall", l["method"])
		}
	}
	require.True(t, found, "the call's log line carries its request id")
}

func TestStreamErrorMapping(t *testing.T) {
	conn := grpctest.New(t, grpctest.Options{Authorizer: testsvc.TokenAuthorizer{Token: "good"}}, testsvc.New().Service())
	stream, err := testpb.NewTestServiceClient(conn).FullDuplexCall(withToken(context.Background(), "good"))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("one")}}))
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, "one", string(resp.GetPayload().GetBody()))
	require.NoError(t, stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(testsvc.PlainError)}}))
	_, err = stream.Recv()
	require.Equal(t, codes.Internal, status.Code(err))
	require.NotContains(t, err.Error(), "secret detail")
}

// TestLifecycleAndPeers runs the fx module on a real TCP port: health follows the
// lifecycle, and Peers reach the process's own listener with the internal token.
func TestLifecycleAndPeers(t *testing.T) {
	cfg, err := config.Parse([]byte("grpc_listen: 127.0.0.1:0\n"),
		func(k string) (string, bool) {
			if k == "VIGIL_INTERNAL_TOKEN" {
				return "internal-secret", true
			}
			return "", false
		}, func() []string { return nil })
	require.NoError(t, err)

	var srv *grpcserver.Server
	var peers rpc.Peers
	app := fxtest.New(t,
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		fx.Provide(func() prometheus.Registerer { return prometheus.NewRegistry() }),
		fx.Supply(fx.Annotate(testsvc.TokenAuthorizer{Token: "internal-secret"}, fx.As(new(rpc.Authorizer)))),
		fx.Provide(rpc.AsService(func() rpc.Service { return testsvc.New().Service() })),
		grpcserver.Module,
		grpcserver.Serve,
		fx.Populate(&srv, &peers),
	)

	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: testsvc.Name})
		require.NoError(t, err)
		return resp.Status
	}

	// Before start the socket is bound but not served: the health call cannot complete yet,
	// so check the status on the server object itself.
	resp, err := srv.Health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: testsvc.Name})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.Status)

	app.RequireStart()
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, check())
	require.Equal(t, []string{testsvc.Name}, srv.ServiceNames())

	pc, err := peers.Conn("matcher")
	require.NoError(t, err)
	var hdr metadata.MD
	ctx := vlog.WithRequestID(context.Background(), "from-peer-ctx")
	_, err = testpb.NewTestServiceClient(pc).EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&hdr))
	require.NoError(t, err, "peer connections carry the internal token")
	require.Equal(t, []string{"tester"}, hdr.Get("x-principal"))
	require.Equal(t, []string{"from-peer-ctx"}, hdr.Get("x-seen-request-id"), "request id propagates to peers")

	app.RequireStop()
	resp, err = srv.Health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: testsvc.Name})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.Status)
	_, err = net.Dial("tcp", srv.Addr())
	require.Error(t, err, "listener closed after stop")
}
