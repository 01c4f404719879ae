package matcher

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigilhq/vigil/platform/db"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations is the matcher's migration set; its goose version table is
// goose_matcher, so it is versioned apart from every other component's.
var migrations = db.Migrations{Service: "matcher", FS: migrationFiles, Dir: "migrations"}

// Migrate applies the matcher's migrations (idempotent, safe from several
// processes at once). `vigil migrate` and auto-migration reach the same set
// through the module's db.AsMigrations; tests and the bench call this.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := db.Migrate(ctx, pool, migrations.FS, migrations.Dir, migrations.VersionTable())
	return err
}
