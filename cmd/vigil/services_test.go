package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/platformtest"
)

// TestEveryComponentWiresAlone checks each registry entry builds on the platform alone
// (as `vigil serve <name>` runs it) and all of them together, without starting anything.
func TestEveryComponentWiresAlone(t *testing.T) {
	for _, name := range componentOrder {
		mod, ok := components[name]
		require.True(t, ok, "component %s is in componentOrder but not registered", name)
		t.Run(name, func(t *testing.T) {
			require.NoError(t, fx.ValidateApp(platformtest.Module, mod))
		})
	}
	require.Len(t, components, len(componentOrder), "every registered component has a start position")
	all := []fx.Option{platformtest.Module}
	for _, n := range componentOrder {
		all = append(all, components[n])
	}
	require.NoError(t, fx.ValidateApp(all...))
}
