// Package licensing is the licensing component: it verifies the deployment's ed25519-signed
// license at start and on reload (SIGHUP, a change of the file, or the Reload RPC),
// answers Check for the other services, shows the license and its usage to admins, and
// holds the functions behind `vigil license keygen|sign|inspect`. Other services use
// Checker, a cached client. See README.md for the file format and the free tier.
package licensing

import (
	"context"
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// ServiceName is the full proto name of the service, as health reports it.
const ServiceName = "vigil.licensing.v1.LicensingService"

// SectionName is the configuration file's section of this component.
const SectionName = "licensing"

// Module is the component's fx module. It needs *config.Config, *slog.Logger,
// prometheus.Registerer and *pgxpool.Pool (usage reports live in the licensing_usage
// table, migrated with the platform's migrations); a license file that does not verify
// fails the app's start.
var Module = fx.Module("licensing",
	log.ForService("licensing"),
	fx.Provide(
		fx.Private,
		func(c *config.Config) (Config, error) { return config.SectionOf[Config](c, SectionName) },
		NewStore,
		func(cfg Config, logger *slog.Logger, store *Store) (*Enforcer, error) {
			return NewEnforcer(cfg, logger, time.Now, store)
		},
		NewServer,
	),
	db.AsMigrations("licensing", migrationFiles, "migrations"),
	fx.Provide(rpc.AsService(NewService)),
	fx.Invoke(registerMetrics, startWatcher),
)

// NewService is the rpc.Service registering s.
func NewService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     ServiceName,
		Register: func(r grpc.ServiceRegistrar) { licensingv1.RegisterLicensingServiceServer(r, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return licensingv1.RegisterLicensingServiceHandler(ctx, mux, conn)
		},
	}
}

func registerMetrics(lc fx.Lifecycle, reg prometheus.Registerer, e *Enforcer) error {
	c := newCollector(e)
	if err := reg.Register(c); err != nil {
		return err
	}
	lc.Append(fx.StopHook(func() { reg.Unregister(c) }))
	return nil
}

func startWatcher(lc fx.Lifecycle, cfg Config, e *Enforcer) {
	w := NewWatcher(e, cfg.WatchInterval)
	lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
}
