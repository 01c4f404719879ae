package tasks_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/rpc"
	"github.com/vigilhq/vigil/services/tasks"
)

// The module wires on the platform alone (no backend in the process: the task queue
// reaches it as a peer), and its config section is read with defaults and validated.
func TestModuleWiring(t *testing.T) {
	cfg, err := config.Parse([]byte("tasks:\n  workers: 2\n"), func(string) (string, bool) { return "", false }, func() []string { return nil })
	require.NoError(t, err)
	require.NoError(t, fx.ValidateApp(
		fx.Supply(cfg), platform.Options(), tasks.Module,
		fx.Invoke(fx.Annotate(func([]rpc.Service) {}, fx.ParamTags(rpc.GroupTag))),
	))

	c, err := config.SectionOf[tasks.Config](cfg, "tasks")
	require.NoError(t, err)
	require.Equal(t, 2, c.Workers)
	require.Equal(t, 16, c.WebhookWorkers, "defaults fill what the file leaves out")

	bad, err := config.Parse([]byte("tasks:\n  retry_base: 2h\n  retry_max: 1h\n"), func(string) (string, bool) { return "", false }, func() []string { return nil })
	require.NoError(t, err)
	_, err = config.SectionOf[tasks.Config](bad, "tasks")
	require.ErrorContains(t, err, "retry_base")
}
