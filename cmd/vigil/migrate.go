package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/jobs"
)

// migrateTargets receives what `vigil migrate` needs from the assembled app.
type migrateTargets struct {
	fx.In
	Pool *pgxpool.Pool
	Log  *slog.Logger
	Sets []db.Migrations `group:"db_migrations"`
}

// runMigrate assembles every component (without starting any) to collect the
// migrations they contribute, and applies them, then River's (the task queue).
func runMigrate(ctx context.Context, cfg *config.Config, extra ...fx.Option) error {
	// Nothing is served: bind a throwaway port rather than the configured one, which a
	// running process may hold, and apply migrations here, not in a start hook.
	cfg.GRPCListen = "127.0.0.1:0"
	cfg.AutoMigrate = false
	// Components are built, not run: embedded servers they depend on must not open the
	// data folders a running process owns.
	tmp, err := os.MkdirTemp("", "vigil-migrate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg.DataDir = tmp
	names, err := allExcept(nil)
	if err != nil {
		return err
	}
	opts := []fx.Option{fx.Supply(cfg), platform.Options(), auth.Module}
	for _, n := range names {
		opts = append(opts, components[n])
	}
	opts = append(opts, extra...)
	var t migrateTargets
	opts = append(opts, fx.Populate(&t))
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		return err
	}
	defer t.Pool.Close()
	if err := db.Ping(ctx, t.Pool); err != nil {
		return err
	}
	if err := db.MigrateAll(ctx, t.Pool, t.Sets, t.Log); err != nil {
		return err
	}
	// River's tables (the task queue's jobs) are not a goose set: River migrates them
	// with its own migrator, which the tasks service also runs on start when auto_migrate
	// is on. With auto_migrate off, this is where they come from.
	if err := jobs.Migrate(ctx, t.Pool); err != nil {
		return err
	}
	t.Log.Info("migrations done", "components", len(t.Sets), "river", true)
	return nil
}
