package verifymatcher_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/services/verifymatcher"
)

func TestModuleWiresOnThePlatform(t *testing.T) {
	cfg, err := config.Parse(nil, func(string) (string, bool) { return "", false }, func() []string { return nil })
	require.NoError(t, err)
	require.NoError(t, fx.ValidateApp(fx.Supply(cfg), platform.Options(), verifymatcher.Module))
}
