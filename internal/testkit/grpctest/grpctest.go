// Package grpctest runs the platform's real gRPC server (production interceptors,
// health, reflection) on bufconn for a test and returns a client connection to it.
package grpctest

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Options tune New.
type Options struct {
	// Authorizer guards every call; nil means the production default (deny all but health).
	Authorizer rpc.Authorizer
	// Log receives the server's log lines; nil discards them.
	Log *slog.Logger
	// Registry receives the server's metrics; nil means a fresh one.
	Registry *prometheus.Registry
}

// New serves services on bufconn until the test ends and returns a connection to them.
func New(t testing.TB, opts Options, services ...rpc.Service) *grpc.ClientConn {
	t.Helper()
	cfg, err := config.Parse(nil, func(string) (string, bool) { return "", false }, func() []string { return nil })
	require.NoError(t, err)
	logger := opts.Log
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	ln := bufconn.Listen(1 << 20)
	srv, err := grpcserver.New(grpcserver.Params{
		Config: cfg, Listener: &grpcserver.Listener{Listener: ln}, Log: logger,
		Registerer: reg, Authorizer: opts.Authorizer, Services: services,
	})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })

	// passthrough: the default DNS resolver would try to resolve "bufnet" (grpc-go #7091).
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
