package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrateLockKey serialises concurrent migrations (several processes starting at once
// against one database): River's migrator itself does not lock.
const migrateLockKey int64 = 0x76_69_67_69_6c_6a_6f_62 // "vigiljob"

// Migrate brings River's own tables (river_job, river_queue, river_leader, ...) up to
// the version this build needs. `vigil migrate` and the tasks service's start call it;
// it is idempotent and safe to run from several processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	// A session lock on a connection of its own: River applies each version in its own
	// transaction (some versions add enum values, which cannot be used in the
	// transaction that adds them), so one enclosing transaction is not possible.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate river schema: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("migrate river schema: lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; a failed unlock dies with the connection.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river schema: %w", err)
	}
	return nil
}
