package matcher

import (
	"log/slog"

	"go.uber.org/fx"
	"google.golang.org/grpc"

	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Module is the matcher component. It needs the platform's *config.Config,
// *slog.Logger, prometheus.Registerer, *pgxpool.Pool and rpc.Peers, and contributes
// its migrations (version table goose_matcher). Its start hook
// loads the whole index from PostgreSQL; the platform's gRPC server starts serving
// (and reports SERVING) only after every component's start hook, so the first search
// finds the index complete.
var Module = fx.Module("matcher",
	log.ForService("matcher"),
	fx.Provide(
		fx.Private,
		func(c *config.Config) (Config, error) { return config.SectionOf[Config](c, "matcher") },
		func(cfg Config) *Index { return NewIndex(cfg.indexConfig()) },
		NewStore,
		newMetrics,
		func(cfg Config, s *Store, ix *Index, l *slog.Logger) *Matcher {
			return NewMatcher(s, ix, cfg.shard(), l)
		},
		newClusterFromPeers,
		NewServer,
	),
	fx.Provide(rpc.AsService(newService)),
	db.AsMigrations(migrations.Service, migrations.FS, migrations.Dir),
	fx.Invoke(registerStart),
)

// clusterParams are newClusterFromPeers' dependencies.
type clusterParams struct {
	fx.In
	Config  Config
	Peers   rpc.Peers
	Local   *Matcher
	Metrics *metrics
}

func newClusterFromPeers(p clusterParams) (*Cluster, error) {
	clients := map[string]matcherv1.MatcherServiceClient{}
	for i, name := range p.Config.Shards {
		if i == p.Config.ShardIndex {
			continue
		}
		conn, err := p.Peers.Conn(name)
		if err != nil {
			return nil, err
		}
		clients[name] = matcherv1.NewMatcherServiceClient(conn)
	}
	return NewCluster(p.Config.Shards, p.Config.ShardIndex, clients, p.Local, p.Config.ShardTimeout, p.Metrics)
}

func newService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     matcherv1.MatcherService_ServiceDesc.ServiceName,
		Register: func(r grpc.ServiceRegistrar) { matcherv1.RegisterMatcherServiceServer(r, s) },
	}
}

// registerStart loads the index when the app starts. The platform's hooks run
// first (its auto-migration included), the gRPC server's last.
func registerStart(lc fx.Lifecycle, m *Matcher) {
	lc.Append(fx.Hook{OnStart: m.Load})
}
