package backend_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/platformtest"
	"github.com/vigilhq/vigil/services/backend"
)

func TestModuleWiring(t *testing.T) {
	// platformtest.Module carries the production authorizer (auth.Module).
	require.NoError(t, fx.ValidateApp(platformtest.Module, backend.Module))
}
