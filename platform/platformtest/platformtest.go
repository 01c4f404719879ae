// Package platformtest runs components on the real platform in tests: a fresh
// PostgreSQL database, loopback ports chosen by the OS, a temporary data folder (so
// Kafka, S3, pub/sub and the cache are the in-process ones), and the production gRPC
// server and gateway.
//
//	func TestModule(t *testing.T) { require.NoError(t, fx.ValidateApp(platformtest.Module, matcher.Module)) }
//	func TestServes(t *testing.T) { app := platformtest.Start(t, matcher.Module); ... app.GRPC ... }
package platformtest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/grpcserver"
)

// Module is the platform on a test configuration, for fx.ValidateApp (which builds the
// graph without running constructors).
var Module = fx.Options(
	fx.Provide(func() (*config.Config, error) { return NewConfig(dbtest.AdminURL(), os.TempDir()) }),
	platform.Module,
	auth.Module,
	gateway.Module,
	grpcserver.Serve,
	gateway.Serve,
)

// NewConfig is a config on loopback port-0 listeners, with databaseURL and dataDir,
// everything else embedded, a fixed internal token (InternalToken), and warn logs.
func NewConfig(databaseURL, dataDir string) (*config.Config, error) {
	env := map[string]string{
		"VIGIL_GRPC_LISTEN":      "127.0.0.1:0",
		"VIGIL_HTTP_LISTEN":      "127.0.0.1:0",
		"VIGIL_PUBLIC_LISTEN":    "127.0.0.1:0",
		"VIGIL_DATABASE_URL":     databaseURL,
		"VIGIL_DATA_DIR":         dataDir,
		"VIGIL_INTERNAL_TOKEN":   InternalToken,
		"VIGIL_LOG_LEVEL":        "warn",
		"VIGIL_SHUTDOWN_TIMEOUT": "5s",
	}
	return config.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func() []string { return nil })
}

// InternalToken is the service token of test processes.
const InternalToken = "platformtest-internal-token"

// App is a started test process.
type App struct {
	Config *config.Config
	DB     *dbtest.DB
	// GRPC is a plain connection to the process's gRPC listener (no credentials: add
	// them per call, e.g. with InternalCredentials).
	GRPC     *grpc.ClientConn
	GRPCAddr string
	// HTTPBase is the gateway's base URL ("http://127.0.0.1:port").
	HTTPBase string
}

// InternalCredentials is a call option authenticating as Vigil's own services.
func InternalCredentials() grpc.CallOption {
	return grpc.PerRPCCredentials(grpcserver.BearerToken{Token: InternalToken, AllowInsecure: true})
}

// Start runs the platform and the production authorizer (auth.Module) with opts
// (component modules, test providers) on a fresh database until the test ends.
func Start(t testing.TB, opts ...fx.Option) *App {
	t.Helper()
	return StartWithConfig(t, "", opts...)
}

// StartWithConfig is Start with component sections (YAML) added to the config.
func StartWithConfig(t testing.TB, yaml string, opts ...fx.Option) *App {
	t.Helper()
	d := dbtest.New(t)
	env := map[string]string{
		"VIGIL_GRPC_LISTEN": "127.0.0.1:0", "VIGIL_HTTP_LISTEN": "127.0.0.1:0", "VIGIL_PUBLIC_LISTEN": "127.0.0.1:0",
		"VIGIL_DATABASE_URL": d.URL, "VIGIL_DATA_DIR": t.TempDir(), "VIGIL_INTERNAL_TOKEN": InternalToken,
		"VIGIL_SHUTDOWN_TIMEOUT": "5s",
	}
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func() []string { return nil })
	require.NoError(t, err)

	var srv *grpcserver.Server
	var gw *gateway.Gateway
	all := []fx.Option{
		fx.Supply(cfg),
		platform.Module,
		auth.Module,
		fx.Decorate(func() *slog.Logger {
			return slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}),
		fx.NopLogger,
	}
	all = append(all, opts...)
	all = append(all, gateway.Module, grpcserver.Serve, gateway.Serve, fx.Populate(&srv, &gw))
	app := fx.New(all...)
	require.NoError(t, app.Err())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, app.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, app.Stop(ctx))
	})

	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	a := &App{Config: cfg, DB: d, GRPC: conn, GRPCAddr: srv.Addr(), HTTPBase: "http://" + gw.Addr()}
	require.Eventually(t, func() bool {
		resp, err := http.Get(a.HTTPBase + "/healthz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)
	return a
}

// testWriter sends log lines to the test's log (shown for failing tests).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
