package db

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"regexp"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/fx"
)

// Migrations is one component's migration set, contributed to the fx group
// "db_migrations" (see AsMigrations) so `vigil migrate` and auto-migration find them all.
type Migrations struct {
	// Service names the component; its version table is goose_<Service>.
	Service string
	// FS holds the .sql (goose) files under Dir.
	FS  fs.FS
	Dir string
	// Run, when set, replaces goose: it applies the component's schema with its own
	// migrator (River's, for the task queue). It must be idempotent and safe to run
	// from several processes at once.
	Run func(ctx context.Context, pool *pgxpool.Pool) error
}

// VersionTable is the goose version table of the set.
func (m Migrations) VersionTable() string { return "goose_" + m.Service }

// MigrationsGroup is the fx value-group tag of Migrations.
const MigrationsGroup = `group:"db_migrations"`

// AsMigrations contributes a component's migrations:
//
//	//go:embed migrations/*.sql
//	var migrationFiles embed.FS
//	db.AsMigrations("matcher", migrationFiles, "migrations")
func AsMigrations(service string, fsys fs.FS, dir string) fx.Option {
	m := Migrations{Service: service, FS: fsys, Dir: dir}
	return fx.Provide(fx.Annotate(func() Migrations { return m }, fx.ResultTags(MigrationsGroup)))
}

// AsMigrationFunc contributes a component whose schema another migrator applies.
func AsMigrationFunc(service string, run func(ctx context.Context, pool *pgxpool.Pool) error) fx.Option {
	m := Migrations{Service: service, Run: run}
	return fx.Provide(fx.Annotate(func() Migrations { return m }, fx.ResultTags(MigrationsGroup)))
}

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Migrate applies the migrations in fsys/dir recording them in versionTable. A
// PostgreSQL advisory lock (keyed by the table) makes concurrent starts apply them once.
func Migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, dir, versionTable string) ([]*goose.MigrationResult, error) {
	if !tableName.MatchString(versionTable) {
		return nil, fmt.Errorf("migrate: bad version table name %q", versionTable)
	}
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", versionTable, err)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("vigil-migrate:" + versionTable))
	// Poll the lock every second (goose waits 5 s by default), for up to 10 minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", versionTable, err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub,
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", versionTable, err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate %s: %w", versionTable, err)
	}
	return res, nil
}

// MigrateAll applies every set, in order, logging what was applied.
func MigrateAll(ctx context.Context, pool *pgxpool.Pool, sets []Migrations, l *slog.Logger) error {
	seen := map[string]bool{}
	for _, m := range sets {
		if seen[m.Service] {
			return fmt.Errorf("migrate: migrations of %s contributed twice", m.Service)
		}
		seen[m.Service] = true
		if m.Run != nil {
			if err := m.Run(ctx, pool); err != nil {
				return fmt.Errorf("migrate %s: %w", m.Service, err)
			}
			l.InfoContext(ctx, "migrations applied", "component", m.Service)
			continue
		}
		res, err := Migrate(ctx, pool, m.FS, m.Dir, m.VersionTable())
		if err != nil {
			return err
		}
		for _, r := range res {
			l.InfoContext(ctx, "migration applied", "component", m.Service, "version", r.Source.Version,
				"file", r.Source.Path, "duration_ms", r.Duration.Milliseconds())
		}
	}
	return nil
}

// ErrNoMigrations is returned by `vigil migrate` when no component contributed any.
var ErrNoMigrations = errors.New("no component contributes migrations")
