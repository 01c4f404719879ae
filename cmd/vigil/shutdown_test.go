package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/internal/testkit/testsvc"
	"github.com/vigilhq/vigil/lb"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/platform/rpc"
)

// testConfig is a config on free loopback ports with a fresh database.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	d := dbtest.New(t)
	env := map[string]string{
		"VIGIL_GRPC_LISTEN":   "127.0.0.1:0",
		"VIGIL_HTTP_LISTEN":   "127.0.0.1:0",
		"VIGIL_PUBLIC_LISTEN": "127.0.0.1:0",
		"VIGIL_DATABASE_URL":  d.URL,
		"VIGIL_DATA_DIR":      t.TempDir(),
		"VIGIL_LOG_LEVEL":     "warn",
	}
	cfg, err := config.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func() []string { return nil })
	require.NoError(t, err)
	return cfg
}

// addrs are the listening addresses of a started process.
type addrs struct{ grpc, http, public string }

// reportAddrs sends the process's addresses once it has started (the last start hook,
// after the load balancer's).
func reportAddrs(ch chan<- addrs) fx.Option {
	return fx.Invoke(func(lc fx.Lifecycle, s *grpcserver.Server, g *gateway.Gateway, front *lb.Server) {
		lc.Append(fx.StartHook(func() { ch <- addrs{grpc: s.Addr(), http: g.Addr(), public: front.Addr()} }))
	})
}

// TestSIGTERMDrainsInFlightRequest starts `vigil all` in-process, holds a REST request
// in a handler, sends the process SIGTERM, and checks the request still completes, new
// connections are refused, and the process exits cleanly.
func TestSIGTERMDrainsInFlightRequest(t *testing.T) {
	cfg := testConfig(t)
	svc := testsvc.New()
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- runUntilSignal(context.Background(), cfg, nil, modeAll,
			// The test service is outside the access table; let a test authorizer guard it.
			fx.Decorate(func(rpc.Authorizer) rpc.Authorizer { return testsvc.TokenAuthorizer{Token: "tok"} }),
			fx.Provide(rpc.AsService(func() rpc.Service { return svc.Service() })),
			reportAddrs(ready),
		)
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("vigil all did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("vigil all did not start within 60s")
	}

	type result struct {
		status int
		body   string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		// Through the public port: load balancer, gateway, gRPC server.
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.public+testsvc.UnaryPath,
			strings.NewReader(`{"payload":{"body":"`+b64(testsvc.Wait)+`"}}`))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	require.Eventually(t, func() bool { return svc.Waiting.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	// Shutdown has begun once the public port stops accepting connections.
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", a.public, 100*time.Millisecond)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	}, 10*time.Second, 10*time.Millisecond)
	select {
	case r := <-resc:
		t.Fatalf("request ended before it was released: %+v", r)
	default:
	}

	close(svc.Release)
	r := <-resc
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.Contains(t, r.body, b64(testsvc.Wait))
	select {
	case err := <-done:
		require.NoError(t, err, "clean exit after the drain")
	case <-time.After(30 * time.Second):
		t.Fatal("process did not stop")
	}
}

// TestAllServesHealthForEveryComponent boots every registered component and checks
// each one's health over a real socket, and the gateway's /healthz.
func TestAllServesHealthForEveryComponent(t *testing.T) {
	cfg := testConfig(t)
	ready := make(chan addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var names []string
	go func() {
		done <- run(ctx, cfg, mustAll(t), modeAll, reportAddrs(ready),
			fx.Invoke(func(s *grpcserver.Server) { names = s.ServiceNames() }))
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("vigil all did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("vigil all did not start within 60s")
	}
	require.GreaterOrEqual(t, len(names), len(components), "one gRPC service per component at least")

	conn, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	for _, n := range append([]string{""}, names...) {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: n})
		require.NoError(t, err, n)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status, n)
	}
	for _, base := range []string{a.http, a.public} {
		resp, err := http.Get("http://" + base + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, base)
	}
	// gRPC through the public port (h2c, routed by content type).
	pub, err := grpc.NewClient(a.public, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer pub.Close()
	hresp, err := healthpb.NewHealthClient(pub).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hresp.Status)

	cancel()
	require.NoError(t, <-done)
}

func mustAll(t *testing.T) []string {
	names, err := allExcept(nil)
	require.NoError(t, err)
	return names
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: []string{"serve", "nosuch"}, want: `unknown component "nosuch"`},
		{args: []string{"all", "--except", "nosuch"}, want: `unknown component "nosuch"`},
		{args: []string{"serve"}, want: "requires at least 1 arg"},
		{args: []string{"all", "--log-level", "loud"}, want: "--log-level"},
		{args: []string{"all", "--config", "/nonexistent.yaml"}, want: "read config"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := newRootCommand()
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Discard)
			err := cmd.Execute()
			require.ErrorContains(t, err, tt.want)
		})
	}

	var out strings.Builder
	cmd := newRootCommand()
	cmd.SetArgs([]string{"version"})
	cmd.SetOut(&out)
	require.NoError(t, cmd.Execute())
	require.Equal(t, "vigil dev\n", out.String())

	names, err := allExcept([]string{"matcher"})
	require.NoError(t, err)
	require.NotContains(t, names, "matcher")
	require.Len(t, names, len(components)-1)
}

// A signal while the process starts (here: as its last start hook runs)
// stops what had started, and is no error. fx's Start reports the
// cancellation about half the time even then, so several rounds.
func TestCancelDuringStartStopsCleanly(t *testing.T) {
	cfg := testConfig(t)
	for range 8 {
		ctx, cancel := context.WithCancel(context.Background())
		var addr string
		err := run(ctx, cfg, []string{"verifymatcher"}, modeServe, fx.Invoke(func(lc fx.Lifecycle, s *grpcserver.Server) {
			lc.Append(fx.StartHook(func() { addr = s.Addr(); cancel() }))
		}))
		require.NoError(t, err)
		require.NotEmpty(t, addr)
		_, err = net.DialTimeout("tcp", addr, time.Second)
		require.Error(t, err, "the gRPC server stopped")
	}
}

// TestServeRunsOnlyTheNamedComponents runs `vigil serve verifymatcher`: its service is
// SERVING, another component's is unknown to this process.
func TestServeRunsOnlyTheNamedComponents(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logs := &lockedBuffer{}
	go func() {
		done <- runUntilSignal(ctx, cfg, []string{"verifymatcher"}, modeServe, fx.Invoke(func(lc fx.Lifecycle, s *grpcserver.Server) {
			lc.Append(fx.StartHook(func() { ready <- s.Addr() }))
		}), fx.Decorate(func(l *slog.Logger) *slog.Logger { return slog.New(slog.NewJSONHandler(logs, nil)) }))
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("vigil serve did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("vigil serve did not start within 60s")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "vigil.verifymatcher.v1.VerifyMatcherService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	_, err = health.Check(ctx, &healthpb.HealthCheckRequest{Service: "vigil.backend.v1.PersonService"})
	require.Equal(t, codes.NotFound, status.Code(err), "the backend does not run in this process")

	// SIGHUP, without licensing to catch it: the process says it reloads
	// nothing and goes on serving (Go's default action was to exit).
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "SIGHUP ignored") }, 10*time.Second, 10*time.Millisecond)
	resp, err = health.Check(ctx, &healthpb.HealthCheckRequest{Service: "vigil.verifymatcher.v1.VerifyMatcherService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	cancel()
	require.NoError(t, <-done)
}

// TestAllPassesTrustedProxiesToTheFrontDoor: trusted_proxies,
// proxy_protocol and forwarded_proto reach the load balancer of `vigil all`, which validates
// them (lb's own tests cover what they do).
func TestAllPassesTrustedProxiesToTheFrontDoor(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []string{"10.0.0.0/8", "proxy.example"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // were it to start
	defer cancel()
	err := run(ctx, cfg, mustAll(t), modeAll)
	require.ErrorContains(t, err, `trusted_proxies[1]: "proxy.example" is neither an IP address nor a CIDR prefix`)

	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.ProxyProtocol, cfg.ForwardedProto = true, "https"
	lc := frontDoorConfig(cfg, "127.0.0.1:1", "127.0.0.1:2")
	require.Equal(t, []string{"10.0.0.0/8"}, lc.TrustedProxies)
	require.True(t, lc.Listeners[0].ProxyProtocol, "the public port reads PROXY headers")
	require.Equal(t, "https", lc.Listeners[0].ForwardedProto, "the balancer terminates TLS")
	require.NoError(t, lc.Validate())
}
