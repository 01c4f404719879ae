// Package platform assembles the shared plumbing every Vigil process runs: config,
// logging, metrics, the gRPC server and peers, PostgreSQL, Kafka, the object store,
// pub/sub and the cache. Components are fx modules that consume what it provides.
package platform

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/cache"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/platform/kafka"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/metrics"
	"github.com/vigilhq/vigil/platform/objstore"
	"github.com/vigilhq/vigil/platform/pubsub"
)

// Options is what the root of every Vigil app starts with: the platform module and fx's
// events logged through the process logger.
func Options() fx.Option { return fx.Options(Module, log.FxEvents) }

// Module provides the platform to the components of a process. The app must also
// supply the *config.Config (fx.Supply(cfg)). Everything is constructed lazily: a
// process without a Kafka consumer never starts the embedded broker.
var Module = fx.Module("platform",
	log.Module,
	metrics.Module,
	grpcserver.Module,
	db.Module,
	kafka.Module,
	objstore.Module,
	pubsub.Module,
	cache.Module,
	fx.Invoke(logEffectiveConfig),
)

// logEffectiveConfig logs, once the app starts (every component's section is decoded by
// then), the configuration actually in force, secrets redacted.
func logEffectiveConfig(lc fx.Lifecycle, cfg *config.Config, l *slog.Logger) {
	lc.Append(fx.StartHook(func() {
		l.Info("effective config", "config", cfg.Effective())
	}))
}
