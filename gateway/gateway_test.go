package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/internal/testkit/testsvc"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/platform/metrics"
	"github.com/vigilhq/vigil/platform/pubsub"
	"github.com/vigilhq/vigil/platform/rpc"
)

type env struct {
	base   string
	server *grpcserver.Server
	ps     pubsub.PubSub
	stop   func()
}

// uploadService contributes a hand-written multipart route on the same pattern as a
// generated JSON route.
func uploadService() rpc.Service {
	return rpc.Service{
		Name:     "test.Upload",
		Register: func(grpc.ServiceRegistrar) {},
		HTTP: func(*grpc.ClientConn) []rpc.HTTPRoute {
			return []rpc.HTTPRoute{{
				Pattern:     "POST " + testsvc.UnaryPath,
				ContentType: "multipart/form-data",
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, "multipart handled")
				}),
			}}
		},
	}
}

func start(t *testing.T, yaml string) env {
	t.Helper()
	cfg, err := config.Parse([]byte("grpc_listen: 127.0.0.1:0\nhttp_listen: 127.0.0.1:0\n"+yaml),
		func(string) (string, bool) { return "", false }, func() []string { return nil })
	require.NoError(t, err)
	var e env
	var g *gateway.Gateway
	app := fxtest.New(t,
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		metrics.Module,
		fx.Supply(fx.Annotate(tokens, fx.As(new(rpc.Authorizer)))),
		fx.Provide(rpc.AsService(func() rpc.Service { return testsvc.New().Service() })),
		fx.Provide(rpc.AsService(uploadService)),
		fx.Provide(rpc.AsService(whoAmIService)),
		pubsub.Module,
		grpcserver.Module,
		gateway.Module,
		grpcserver.Serve,
		gateway.Serve,
		fx.Populate(&e.server, &g, &e.ps),
		fx.NopLogger,
	)
	app.RequireStart()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			app.RequireStop()
		}
	})
	e.stop = func() { stopped = true; app.RequireStop() }
	e.base = "http://" + g.Addr()
	return e
}

func do(t *testing.T, method, url, contentType, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRESTCalls(t *testing.T) {
	e := start(t, "gateway:\n  max_body_bytes: 1024\n")
	auth := map[string]string{"Authorization": "Bearer tok"}
	unary := e.base + testsvc.UnaryPath

	tests := []struct {
		name     string
		body     string
		hdr      map[string]string
		ct       string
		want     int
		contains string
	}{
		{name: "ok", body: `{"payload":{"body":"` + b64("hi") + `"}}`, hdr: auth, want: 200, contains: b64("hi")},
		{name: "principal from forwarded authorization", body: `{}`, hdr: auth, want: 200, contains: `"username":"tester"`},
		{name: "api key header forwarded", body: `{}`, hdr: map[string]string{"X-Api-Key": "tok"}, want: 200, contains: `"username":"tester"`},
		{name: "no credentials", body: `{}`, want: 401},
		{name: "wrong credentials", body: `{}`, hdr: map[string]string{"Authorization": "Bearer nope"}, want: 401},
		{name: "not found maps to 404", body: `{"responseStatus":{"code":5,"message":"person p1 not found"}}`, hdr: auth, want: 404, contains: "person p1 not found"},
		{name: "invalid argument maps to 400", body: `{"responseStatus":{"code":3,"message":"name: required"}}`, hdr: auth, want: 400, contains: "name: required"},
		{name: "resource exhausted maps to 429", body: `{"responseStatus":{"code":8,"message":"license: max persons"}}`, hdr: auth, want: 429},
		{name: "plain error is a generic 500", body: `{"payload":{"body":"` + b64(testsvc.PlainError) + `"}}`, hdr: auth, want: 500, contains: `"message":"internal error"`},
		{name: "malformed json", body: `{"payload":`, hdr: auth, want: 400},
		{name: "unknown field named", body: `{"payload":{"body":"aGk="},"bogusField":1}`, hdr: auth, want: 400, contains: "bogusField"},
		{name: "wrong type named", body: `{"responseSize":"many"}`, hdr: auth, want: 400, contains: "responseSize"},
		{name: "oversize body", body: `{"payload":{"body":"` + strings.Repeat("A", 4096) + `"}}`, hdr: auth, want: 400, contains: "too large"},
		{name: "multipart goes to the hand-written route", body: "--x--", ct: "multipart/form-data; boundary=x", want: 200, contains: "multipart handled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.ct
			if ct == "" {
				ct = "application/json"
			}
			resp, body := do(t, http.MethodPost, unary, ct, tt.body, tt.hdr)
			require.Equal(t, tt.want, resp.StatusCode, body)
			require.Contains(t, body, tt.contains)
			require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
			require.NotContains(t, body, "secret detail")
		})
	}
}

func TestRequestIDForwarded(t *testing.T) {
	e := start(t, "")
	resp, body := do(t, http.MethodGet, e.base+testsvc.EmptyPath, "", "", map[string]string{
		"Authorization": "Bearer tok", "X-Request-Id": "rest-req-7",
	})
	require.Equal(t, 200, resp.StatusCode, body)
	require.Equal(t, "rest-req-7", resp.Header.Get("X-Request-Id"))
	require.Equal(t, "rest-req-7", resp.Header.Get("Grpc-Metadata-X-Seen-Request-Id"), "the gRPC handler saw the same id")

	resp, _ = do(t, http.MethodGet, e.base+testsvc.EmptyPath, "", "", map[string]string{"Authorization": "Bearer tok"})
	id := resp.Header.Get("X-Request-Id")
	require.Len(t, id, 36)
	require.Equal(t, id, resp.Header.Get("Grpc-Metadata-X-Seen-Request-Id"))
}

func TestHealthMetricsOpenAPIAndIndex(t *testing.T) {
	e := start(t, "")

	resp, body := do(t, http.MethodGet, e.base+"/healthz", "", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, `{"status":"SERVING"}`, body)
	resp, _ = do(t, http.MethodGet, e.base+"/healthz?service="+testsvc.Name, "", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	e.server.Health.SetServingStatus(testsvc.Name, healthpb.HealthCheckResponse_NOT_SERVING)
	resp, body = do(t, http.MethodGet, e.base+"/healthz?service="+testsvc.Name, "", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.JSONEq(t, `{"status":"NOT_SERVING"}`, body)

	_, _ = do(t, http.MethodGet, e.base+testsvc.EmptyPath, "", "", map[string]string{"Authorization": "Bearer tok"})
	resp, body = do(t, http.MethodGet, e.base+"/metrics", "", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, body, `vigil_gateway_requests_total{code="200",method="GET"}`)
	require.Contains(t, body, `vigil_grpc_server_handled_total{code="OK",method="/grpc.testing.TestService/EmptyCall"} 1`)

	resp, body = do(t, http.MethodGet, e.base+"/openapi.json", "", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	require.Equal(t, "2.0", doc["swagger"])

	resp, body = do(t, http.MethodGet, e.base+"/", "", "", nil)
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, body, `href="/openapi.json"`)
	resp, _ = do(t, http.MethodGet, e.base+"/nope", "", "", nil)
	require.Equal(t, 404, resp.StatusCode)
	resp, _ = do(t, http.MethodGet, e.base+"/v1/nope", "", "", nil)
	require.Equal(t, 404, resp.StatusCode)
}
