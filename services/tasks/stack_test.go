package tasks_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/platform/kafka"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/platform/rpc"
	"github.com/vigilhq/vigil/services/backend"
	"github.com/vigilhq/vigil/services/tasks"
)

// stack is a Vigil process as production assembles it (platform, authorizer, the
// backend, the task queue, the gRPC server) on a fresh database, with what the tests
// reach into: a connection with the internal credentials, the Kafka cluster, the object
// store and the first workspace.
type stack struct {
	conn      grpc.ClientConnInterface
	kafka     *kafka.Cluster
	objects   *objstore.Store
	pool      *pgxpool.Pool
	workspace string
	// restURL is the gateway's base URL (with stackOptions.rest).
	restURL string
}

func init() {
	// The first admin's password is printed on first start; not in test output.
	backend.BootstrapOutput = io.Discard
}

const internalToken = "tasks-test-internal-token-0123456789"

// stackOptions: before and after are component modules placed, as in cmd/vigil's
// component order, before the backend (licensing) and after the task queue (matcher,
// Image API); rest adds the REST gateway.
type stackOptions struct {
	before, after, extra []fx.Option
	rest                 bool
	// tasksYAML is added to the tasks: section ("reextract_page_size: 2\n").
	tasksYAML string
}

// newStack assembles the process.
func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	db := dbtest.New(t)
	yaml := fmt.Sprintf(`
database_url: %q
grpc_listen: 127.0.0.1:0
http_listen: 127.0.0.1:0
data_dir: %q
log_level: error
tasks:
  retry_base: 50ms
  retry_max: 200ms
  poll_interval: 50ms
  webhook_timeout: 2s
  webhook_batch_linger: 300ms
`, db.URL, t.TempDir()) + indent(o.tasksYAML, "  ")
	env := map[string]string{"VIGIL_INTERNAL_TOKEN": internalToken}
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		func() []string { return []string{"VIGIL_INTERNAL_TOKEN=" + internalToken} })
	require.NoError(t, err)

	s := &stack{pool: db.Pool}
	var peers *grpcserver.Peers
	opts := []fx.Option{fx.Supply(cfg), platform.Options(), auth.Module}
	opts = append(opts, o.before...)
	opts = append(opts, backend.Module, tasks.Module)
	opts = append(opts, o.after...)
	opts = append(opts, o.extra...)
	if o.rest {
		opts = append(opts, gateway.Module)
	}
	opts = append(opts, grpcserver.Serve, fx.Populate(&peers, &s.kafka, &s.objects))
	var gw *gateway.Gateway
	if o.rest {
		opts = append(opts, gateway.Serve, fx.Populate(&gw))
	}
	app := fxtest.New(t, opts...)
	app.RequireStart()
	t.Cleanup(app.RequireStop)

	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT id::text FROM workspaces`).Scan(&s.workspace))
	s.conn, err = peers.Conn("backend")
	require.NoError(t, err)
	if gw != nil {
		s.restURL = "http://" + gw.DialAddr()
	}
	return s
}

// in returns a context acting, with the internal credentials, within the workspace.
func (s *stack) in() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), rpc.MetadataWorkspace, s.workspace)
}

func mustID(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	require.NoError(t, err)
	return n
}

// indent prefixes every line of text.
func indent(text, prefix string) string {
	var out strings.Builder
	for line := range strings.Lines(text) {
		out.WriteString(prefix + line)
	}
	return out.String()
}
