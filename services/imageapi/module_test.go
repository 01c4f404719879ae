package imageapi

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/rpc"
)

func TestModuleWiring(t *testing.T) {
	env := map[string]string{"VIGIL_IMAGEAPI_ORT_POOL_SIZE": "1"}
	cfg, err := config.Parse([]byte("imageapi:\n  max_samples: 8\n  face:\n    score_threshold: 0.7\n"),
		func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func() []string { return nil })
	require.NoError(t, err)
	err = fx.ValidateApp(
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		fx.Supply(fx.Annotate(prometheus.NewRegistry(), fx.As(new(prometheus.Registerer)))),
		fx.Provide(func() rpc.Peers { return nil }), // ValidateApp runs no constructor
		Module,
		fx.Invoke(fx.Annotate(func([]rpc.Service) {}, fx.ParamTags(rpc.GroupTag))),
	)
	require.NoError(t, err)

	c, err := config.SectionOf[Config](cfg, "imageapi")
	require.NoError(t, err)
	require.Equal(t, 8, c.MaxSamples)
	require.Equal(t, 0.7, c.Face.ScoreThreshold)
	require.Equal(t, 0.3, c.Face.NMSIoU, "defaults fill what the file leaves out")
	require.Equal(t, 1, c.ORT.PoolSize, "environment overrides")
	require.Equal(t, 16, c.MaxBatch)
}
