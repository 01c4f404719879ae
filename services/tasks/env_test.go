package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/internal/testkit/grpctest"
	dbpkg "github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/jobs"
	"github.com/vigilhq/vigil/platform/rpc"
)

// The tests' own job kind: a real River job run by the real client, whose behaviour
// (steps, failures, blocking) the test controls, to drive the queue through every status.
const (
	kindSteps = "vigil.test_steps"
	typeSteps = Type(100)
)

func TestMain(m *testing.M) {
	kindOfType[typeSteps] = kindSteps
	os.Exit(m.Run())
}

type stepsArgs struct {
	WorkspaceID string `json:"workspace_id"`
	// Steps items, each waiting for a token on gates[Gate] when Gate is set.
	Steps int    `json:"steps"`
	Gate  string `json:"gate,omitempty"`
	// FailAttempts: the first attempts fail with a retryable error.
	FailAttempts int  `json:"fail_attempts,omitempty"`
	Permanent    bool `json:"permanent,omitempty"`
	// Block until the job's context is cancelled.
	Block bool `json:"block,omitempty"`
}

func (stepsArgs) Kind() string        { return kindSteps }
func (a stepsArgs) Workspace() string { return a.WorkspaceID }

var gates sync.Map // name → chan struct{}

func gate(name string) chan struct{} {
	ch, _ := gates.LoadOrStore(name, make(chan struct{}))
	return ch.(chan struct{})
}

type stepsWorker struct {
	river.WorkerDefaults[stepsArgs]
	pool *pgxpool.Pool
}

func (w *stepsWorker) Work(ctx context.Context, job *river.Job[stepsArgs]) error {
	return settle(ctx, w.pool, job.ID, w.run(ctx, job))
}

func (w *stepsWorker) run(ctx context.Context, job *river.Job[stepsArgs]) error {
	a := job.Args
	if job.Attempt <= a.FailAttempts {
		return fmt.Errorf("attempt %d fails on purpose", job.Attempt)
	}
	if a.Permanent {
		return permanent(errors.New("this cannot work"))
	}
	if a.Block {
		<-ctx.Done()
		return ctx.Err()
	}
	p := newProgress(w.pool, job.ID, Progress{})
	if err := p.SetTotal(ctx, int64(a.Steps)); err != nil {
		return err
	}
	for i := range a.Steps {
		if a.Gate != "" {
			select {
			case <-gate(a.Gate):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := p.Done(ctx, 1, 0, "", int64(i+1), 0); err != nil {
			return err
		}
		if err := p.Flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// staticPeers dials every component at one connection (the test's own servers).
type staticPeers struct{ conn grpc.ClientConnInterface }

func (p staticPeers) Conn(string) (grpc.ClientConnInterface, error) {
	if p.conn == nil {
		return nil, errors.New("no peer in this test")
	}
	return p.conn, nil
}

// testConfig retries fast, so the tests see back-off without waiting for it.
func testConfig() Config {
	var c Config
	c.SetDefaults()
	c.RetryBase = 50 * time.Millisecond
	c.RetryMax = 200 * time.Millisecond
	c.PollInterval = 50 * time.Millisecond
	c.WebhookTimeout = 2 * time.Second
	return c
}

type env struct {
	rt      *Runtime
	client  tasksv1.TaskServiceClient
	metrics *prometheus.Registry
}

type envOptions struct {
	peers   rpc.Peers
	objects ObjectStore
	config  *Config
	// noStart leaves the workers stopped (the test starts them).
	noStart bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	db := dbtest.New(t)
	ctx := context.Background()
	require.NoError(t, jobs.Migrate(ctx, db.Pool))
	fsys, dir := MigrationFiles()
	_, err := dbpkg.Migrate(ctx, db.Pool, fsys, dir, "goose_tasks")
	require.NoError(t, err)
	cfg := testConfig()
	if o.config != nil {
		cfg = *o.config
	}
	if o.peers == nil {
		o.peers = staticPeers{}
	}
	if o.objects == nil {
		o.objects = missingObjectStore{}
	}
	reg := prometheus.NewRegistry()
	rt, err := NewRuntime(Deps{
		Pool: db.Pool, Config: cfg, Objects: o.objects, Bucket: "vigil", Peers: o.peers,
		Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		extraWorkers: func(w *river.Workers) { river.AddWorker(w, &stepsWorker{pool: db.Pool}) },
	})
	require.NoError(t, err)
	e := &env{rt: rt, metrics: reg}
	if !o.noStart {
		e.start(t)
	}
	conn := grpctest.New(t, grpctest.Options{Authorizer: workspaceFromMetadata{}}, NewService(NewServer(rt.Manager)))
	e.client = tasksv1.NewTaskServiceClient(conn)
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	require.NoError(t, e.rt.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, e.rt.Stop(ctx))
	})
}

// workspaceFromMetadata stands in for the platform's authorizer (whose own tests walk the
// access table): the caller acts as an admin of the workspace named in the request's
// x-vigil-workspace-id, and in none without it.
type workspaceFromMetadata struct{}

func (workspaceFromMetadata) Authorize(ctx context.Context, _ string) (context.Context, error) {
	p := &rpc.Principal{Kind: commonv1.Access_KIND_WORKSPACE, Role: commonv1.Role_ROLE_ADMIN, SubjectID: "test"}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(rpc.MetadataWorkspace); len(v) == 1 {
			p.WorkspaceID = v[0]
		}
	}
	return rpc.WithPrincipal(ctx, p), nil
}

// as returns a context calling as workspace ws.
func as(ws string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), rpc.MetadataWorkspace, ws)
}
