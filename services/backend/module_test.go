package backend_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/platformtest"
	"github.com/vigilhq/vigil/services/backend"
)

func TestModuleWiring(t *testing.T) {
	require.NoError(t, fx.ValidateApp(platformtest.Module, auth.Module, backend.Module))
	// Without the auth module (a process that leaves authorization to a default), the
	// backend still wires: the auditor and the invalidator are optional.
	require.NoError(t, fx.ValidateApp(platformtest.Module, backend.Module))
}
