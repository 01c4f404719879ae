package matcher_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/services/matcher"
)

// TestIndexLoadedBeforeServing starts a real process shape (platform, matcher module,
// gRPC server) on a database holding templates: by the time the app has started and
// health says SERVING, the whole index is in memory (no lazy load on first search).
func TestIndexLoadedBeforeServing(t *testing.T) {
	db := dbtest.New(t)
	ctx := context.Background()
	require.NoError(t, matcher.Migrate(ctx, db.Pool))
	rng := rand.New(rand.NewPCG(1, 2))
	var ts []matcher.Template
	for i := 0; i < 20_000; i++ {
		v := make([]float32, 128)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		ts = append(ts, matcher.Template{ID: fmt.Sprint("t", i), PersonID: fmt.Sprint("p", i/4), ModelID: "m@1", Vector: v})
	}
	store := matcher.NewStore(db.Pool)
	ix := matcher.NewIndex(matcher.DefaultIndexConfig())
	prepared, err := ix.Prepare("ws", ts)
	require.NoError(t, err)
	require.NoError(t, store.AddTemplates(ctx, "ws", prepared))

	yaml := fmt.Sprintf("database_url: %q\ngrpc_listen: 127.0.0.1:0\nhttp_listen: 127.0.0.1:0\ndata_dir: %q\nlog_level: error\n", db.URL, t.TempDir())
	cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false }, func() []string { return nil })
	require.NoError(t, err)
	var gather prometheus.Gatherer
	var server *grpcserver.Server
	app := fx.New(fx.Supply(cfg), platform.Options(), matcher.Module, grpcserver.Serve, fx.NopLogger,
		fx.Populate(&gather, &server))
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, app.Start(startCtx))
	defer func() { require.NoError(t, app.Stop(context.Background())) }()

	conn, err := grpc.NewClient("passthrough:///"+server.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "vigil.matcher.v1.MatcherService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus())

	families, err := gather.Gather()
	require.NoError(t, err)
	var templates float64
	for _, f := range families {
		if f.GetName() == "vigil_matcher_index_templates" {
			for _, m := range f.GetMetric() {
				templates += m.GetGauge().GetValue()
			}
		}
	}
	require.Equal(t, float64(len(ts)), templates)
}
