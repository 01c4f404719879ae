package auth

import (
	"errors"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Config is the "auth" section of the configuration.
type Config struct {
	// CacheTTL bounds how long a resolved credential is trusted without asking the
	// backend again. Revocations are broadcast and take effect at once; should a broadcast
	// be lost, within CacheTTL.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the number of cached credentials.
	CacheSize int `yaml:"cache_size"`
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	c.CacheTTL = 30 * time.Second
	c.CacheSize = 10000
}

// Validate checks the values.
func (c *Config) Validate() error {
	if c.CacheTTL < 0 || c.CacheSize <= 0 {
		return errors.New("auth: cache_ttl must not be negative and cache_size must be positive")
	}
	return nil
}

// Module provides the process's rpc.Authorizer (and *Authorizer), the Invalidator the
// backend calls on revocations (broadcast to every process over the platform's pub/sub),
// and the *Auditor.
var Module = fx.Module("auth",
	fx.Provide(
		func(cfg *config.Config) (Config, error) { return config.SectionOf[Config](cfg, "auth") },
		func() *AccessTable { return NewAccessTable(nil) },
		func(c Config) *Cache { return NewCache(c.CacheTTL, c.CacheSize) },
		fx.Annotate(NewBroadcastInvalidator, fx.As(new(Invalidator))),
		NewMetrics,
		fx.Annotate(NewBackendResolver, fx.As(new(Resolver))),
		fx.Annotate(
			func(t *AccessTable, peers rpc.Peers, l *slog.Logger, m *Metrics) *Auditor {
				return NewAuditor(t, BackendAuditSink{Peers: peers}, l.With("service", "audit"), m)
			},
			fx.As(fx.Self()), fx.As(new(rpc.Auditor)),
		),
		fx.Annotate(
			func(t *AccessTable, r Resolver, cfg *config.Config, a *Auditor) *Authorizer {
				return NewAuthorizer(t, r, cfg.InternalToken, a)
			},
			fx.As(fx.Self()), fx.As(new(rpc.Authorizer)),
		),
	),
)
