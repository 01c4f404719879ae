package matcher_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/services/matcher"
)

// The module's dependencies are exactly what the platform provides, with and
// without a shard map.
func TestModuleWiresOnThePlatform(t *testing.T) {
	for _, yaml := range []string{"", "matcher:\n  shards: [matcher-0, matcher-1]\n  shard_index: 1\n"} {
		cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false }, func() []string { return nil })
		require.NoError(t, err)
		require.NoError(t, fx.ValidateApp(fx.Supply(cfg), platform.Options(), matcher.Module))
	}
}
