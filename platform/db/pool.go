// Package db connects to PostgreSQL (pgxpool) and applies each component's embedded
// goose migrations, each component with its own version table.
package db

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/config"
)

// NewPool returns a pool for url. It does not connect yet; Ping does.
func NewPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database_url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return pool, nil
}

// Ping checks that the database answers, with a clear message when it does not.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		c := pool.Config().ConnConfig
		return fmt.Errorf("PostgreSQL at %s:%d (database %q) does not answer: %w", c.Host, c.Port, c.Database, err)
	}
	return nil
}

// PoolParams are the dependencies of the fx-provided pool.
type PoolParams struct {
	fx.In

	Lifecycle  fx.Lifecycle
	Config     *config.Config
	Log        *slog.Logger
	Migrations []Migrations `group:"db_migrations"`
}

// ProvidePool is the fx constructor of the process's pool. Its start hook, which runs
// before any component's (components depend on the pool), checks the database answers
// and, with auto_migrate, applies every contributed migration set.
func ProvidePool(p PoolParams) (*pgxpool.Pool, error) {
	pool, err := NewPool(context.Background(), p.Config.DatabaseURL)
	if err != nil {
		return nil, err
	}
	logger := p.Log.With("service", "db")
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := Ping(ctx, pool); err != nil {
				return err
			}
			if p.Config.AutoMigrate {
				return MigrateAll(ctx, pool, p.Migrations, logger)
			}
			return nil
		},
		OnStop: func(context.Context) error {
			pool.Close()
			return nil
		},
	})
	return pool, nil
}

// Module provides the *pgxpool.Pool.
var Module = fx.Provide(ProvidePool)
