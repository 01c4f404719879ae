package licensing

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	"github.com/vigilhq/vigil/platform/db"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store keeps the reported usage counts in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns the store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// resourceColumn is the stored name of a resource.
func resourceColumn(r licensingv1.Resource) (string, error) {
	switch r {
	case licensingv1.Resource_RESOURCE_PERSONS:
		return "persons", nil
	case licensingv1.Resource_RESOURCE_AGENTS:
		return "agents", nil
	case licensingv1.Resource_RESOURCE_CAMERAS:
		return "cameras", nil
	default:
		return "", fmt.Errorf("%w: resource %v is not a counted resource", ErrInvalidArgument, r)
	}
}

// Put records the reports (each replacing its workspace's previous count) in one
// transaction.
func (s *Store) Put(ctx context.Context, reports []UsageReport, at time.Time) error {
	batch := &pgx.Batch{}
	for _, r := range reports {
		res, err := resourceColumn(r.Resource)
		if err != nil {
			return err
		}
		batch.Queue(`INSERT INTO licensing_usage (resource, workspace_id, count, report_time)
			VALUES ($1, $2, $3, $4)
			ON CONFLICT (resource, workspace_id) DO UPDATE SET count = EXCLUDED.count, report_time = EXCLUDED.report_time`,
			res, r.WorkspaceID, r.Count, at)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return fmt.Errorf("store usage reports: %w", err)
	}
	return nil
}

// Used sums the latest counts of every workspace for r, with the latest report's time
// (zero when none).
func (s *Store) Used(ctx context.Context, r licensingv1.Resource) (int64, time.Time, error) {
	res, err := resourceColumn(r)
	if err != nil {
		return 0, time.Time{}, err
	}
	var (
		sum    int64
		latest *time.Time
	)
	err = s.pool.QueryRow(ctx,
		`SELECT COALESCE(sum(count), 0)::bigint, max(report_time) FROM licensing_usage WHERE resource = $1`, res,
	).Scan(&sum, &latest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sum usage of %s: %w", res, err)
	}
	if latest == nil {
		return sum, time.Time{}, nil
	}
	return sum, *latest, nil
}

// Migrate applies the licensing migrations to pool (the platform does this on start with
// auto_migrate; this is for tools and tests).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := db.Migrate(ctx, pool, migrationFiles, "migrations", db.Migrations{Service: "licensing"}.VersionTable())
	return err
}
