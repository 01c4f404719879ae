package backend

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/platform/pubsub"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Module is the backend component: its services, migrations and first-start bootstrap.
var Module = fx.Module("backend",
	log.ForService("backend"),
	db.AsMigrations("backend", migrationFiles, "migrations"),
	fx.Provide(
		fx.Private,
		NewConfig,
		newBackendFromParams,
	),
	fx.Provide(rpc.AsServices(services)),
	fx.Invoke(registerBootstrap),
)

// NewConfig reads the "backend" section.
func NewConfig(cfg *config.Config) (Config, error) {
	return config.SectionOf[Config](cfg, "backend")
}

// Params are the backend's dependencies. The object store, the face extractor and the
// invalidator are optional: without them photo calls answer UNAVAILABLE and credential
// caches expire on their own.
type Params struct {
	fx.In

	Pool        *pgxpool.Pool
	Config      Config
	Log         *slog.Logger
	Peers       rpc.Peers
	Objects     ObjectStore     `optional:"true"`
	Store       *objstore.Store `optional:"true"`
	Faces       FaceExtractor   `optional:"true"`
	Invalidator Invalidator     `optional:"true"`
	// The person-card cache (backend.person_cache_ttl) runs on the platform's pub/sub
	// and Redis; without pub/sub GetPerson reads the database every time.
	Lifecycle fx.Lifecycle
	Redis     *pubsub.RedisConn     `optional:"true"`
	PubSub    pubsub.PubSub         `optional:"true"`
	Metrics   prometheus.Registerer `optional:"true"`
}

func newBackendFromParams(p Params) (*Backend, error) {
	objects := p.Objects
	if objects == nil && p.Store != nil {
		objects = NewObjectStore(p.Store)
	}
	faces := p.Faces
	if faces == nil {
		faces = NewImageAPIFaces(p.Peers)
	}
	b := NewBackend(p.Pool, p.Config, p.Log, p.Peers, objects, faces, p.Invalidator)
	b.usageReported = make(chan struct{})
	b.usageKick = make(chan struct{}, 1)
	var rdb *redis.Client
	if p.Redis != nil {
		rdb = p.Redis.Client
	}
	cards, err := newPersonCards(rdb, p.PubSub, p.Config.PersonCacheTTL, p.Metrics, p.Log.With("cache", "person_cards"))
	if err != nil {
		return nil, fmt.Errorf("backend: person cache: %w", err)
	}
	b.cards = cards
	p.Lifecycle.Append(fx.StopHook(cards.close))
	return b, nil
}

// BootstrapOutput is where the first admin's credentials are printed (stdout).
var BootstrapOutput io.Writer = os.Stdout

// serviceParams build each service. Their mutating calls are audited by the platform's
// gRPC server (the auth module's Auditor), like every component's.
type serviceParams struct {
	fx.In

	Backend *Backend
}

func registerBootstrap(lc fx.Lifecycle, b *Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	swept := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(startCtx context.Context) error {
			res, err := b.Bootstrap(startCtx)
			if err != nil {
				return err
			}
			if res != nil {
				b.announceBootstrap(startCtx, res, BootstrapOutput)
			}
			go func() {
				defer close(done)
				b.reportUsageUntilDone(ctx)
				b.runUsageFlusher(ctx)
			}()
			go func() {
				defer close(swept)
				b.runJanitor(ctx)
			}()
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			<-done
			<-swept
			return nil
		},
	})
}

// services are the backend's gRPC services, each with its generated REST handlers.
func services(p serviceParams) []rpc.Service {
	b := p.Backend
	return []rpc.Service{
		{
			Name:     backendv1.AuthService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterAuthServiceServer(r, &AuthServer{b: b}) },
			Gateway:  backendv1.RegisterAuthServiceHandler,
		}, {
			Name:     backendv1.WorkspaceService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterWorkspaceServiceServer(r, &WorkspaceServer{b: b}) },
			Gateway:  backendv1.RegisterWorkspaceServiceHandler,
		}, {
			Name:     backendv1.UserService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterUserServiceServer(r, &UserServer{b: b}) },
			Gateway:  backendv1.RegisterUserServiceHandler,
		}, {
			Name:     backendv1.ApiKeyService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterApiKeyServiceServer(r, &APIKeyServer{b: b}) },
			Gateway:  backendv1.RegisterApiKeyServiceHandler,
		}, {
			Name:     backendv1.PersonService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterPersonServiceServer(r, &PersonServer{b: b}) },
			Gateway:  backendv1.RegisterPersonServiceHandler,
			HTTP:     photoUploadRoutes,
		}, {
			Name:     backendv1.GroupService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterGroupServiceServer(r, &GroupServer{b: b}) },
			Gateway:  backendv1.RegisterGroupServiceHandler,
		}, {
			Name:     backendv1.AgentService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterAgentServiceServer(r, &AgentServer{b: b}) },
			Gateway:  backendv1.RegisterAgentServiceHandler,
		}, {
			Name:     backendv1.EventQueryService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterEventQueryServiceServer(r, &EventQueryServer{b: b}) },
			Gateway:  backendv1.RegisterEventQueryServiceHandler,
		}, {
			Name:     backendv1.WebhookService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterWebhookServiceServer(r, &WebhookServer{b: b}) },
			Gateway:  backendv1.RegisterWebhookServiceHandler,
		}, {
			Name:     backendv1.AuditService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterAuditServiceServer(r, &AuditServer{b: b}) },
			Gateway:  backendv1.RegisterAuditServiceHandler,
		},
	}
}
