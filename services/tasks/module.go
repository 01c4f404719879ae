// Package tasks is Vigil's task queue (vigil.tasks.v1): durable asynchronous jobs on
// River over the shared PostgreSQL — bulk person import, retention purge, webhook
// delivery — with progress, retries with exponential back-off, cancellation and a dead
// letter, and the TaskService that creates, lists, cancels and retries them. Other
// components enqueue through platform/jobs, never through this package. See README.md.
package tasks

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	tasksv1 "github.com/vigilhq/vigil/gen/go/vigil/tasks/v1"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/kafka"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/platform/rpc"
)

// ServiceName is the full proto name of TaskService, as health reports it.
const ServiceName = "vigil.tasks.v1.TaskService"

// Module is the component's fx module: it runs the workers while the app runs and
// contributes TaskService to the process.
var Module = fx.Module("tasks",
	log.ForService("tasks"),
	db.AsMigrations("tasks", migrationFiles, "migrations"),
	fx.Provide(
		fx.Private,
		func(c *config.Config) (Config, error) { return config.SectionOf[Config](c, "tasks") },
		NewRuntimeFromParams,
		func(rt *Runtime) *Server { return NewServer(rt.Manager) },
	),
	fx.Provide(rpc.AsService(NewService)),
)

// RuntimeParams are the process's parts the task queue uses.
type RuntimeParams struct {
	fx.In

	Lifecycle  fx.Lifecycle
	Core       *config.Config
	Config     Config
	Pool       *pgxpool.Pool
	Peers      rpc.Peers
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Objects is the platform's object store; without one, imports and purges fail with
	// UNAVAILABLE.
	Objects *objstore.Store `optional:"true"`
	// Kafka brings event notifications to the webhook dispatcher; without it, only
	// deliveries queued directly (jobs.InsertTx) are made.
	Kafka *kafka.Cluster `optional:"true"`
}

// NewRuntimeFromParams builds the Runtime and ties it to the app's lifecycle: River's
// migrations (with auto_migrate) and the workers start with the app; on stop, running
// jobs get until the stop deadline to finish, then are cancelled (and retried later).
func NewRuntimeFromParams(p RuntimeParams) (*Runtime, error) {
	var objects ObjectStore = missingObjectStore{}
	if p.Objects != nil {
		objects = storeObjects{p.Objects}
	}
	rt, err := NewRuntime(Deps{
		Pool: p.Pool, Config: p.Config, Objects: objects, Bucket: p.Core.S3.Bucket,
		Peers: p.Peers, Migrate: p.Core.AutoMigrate, Logger: p.Logger, Registerer: p.Registerer,
	})
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: rt.Start, OnStop: rt.Stop})
	if p.Kafka != nil {
		c := &notificationConsumer{cluster: p.Kafka, dispatcher: rt.Dispatcher, log: p.Logger}
		p.Lifecycle.Append(fx.Hook{OnStart: c.Start, OnStop: c.Stop})
	}
	return rt, nil
}

// NewService is the rpc.Service registering s on the process's server.
func NewService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     ServiceName,
		Register: func(r grpc.ServiceRegistrar) { tasksv1.RegisterTaskServiceServer(r, s) },
		Gateway:  tasksv1.RegisterTaskServiceHandler,
		HTTP:     importRoutes,
	}
}
