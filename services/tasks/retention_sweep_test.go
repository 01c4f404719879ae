package tasks

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/services/backend"
)

// The sweep queues one purge per workspace that keeps events for a limited time, and
// none for workspaces that keep them forever.
func TestRetentionSweepQueuesPurgesOfWorkspacesWithRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noStart: true})
	ctx := context.Background()
	fsys, dir := backend.MigrationFiles()
	_, err := db.Migrate(ctx, e.rt.pool, fsys, dir, "goose_backend")
	require.NoError(t, err)
	var limited, forever string
	require.NoError(t, e.rt.pool.QueryRow(ctx, `INSERT INTO workspaces (id, name, retention_days) VALUES (gen_random_uuid(), 'a', 7) RETURNING id::text`).Scan(&limited))
	require.NoError(t, e.rt.pool.QueryRow(ctx, `INSERT INTO workspaces (id, name, retention_days) VALUES (gen_random_uuid(), 'b', 0) RETURNING id::text`).Scan(&forever))

	_, err = e.rt.Queue.Insert(ctx, retentionSweepArgs{}, nil)
	require.NoError(t, err)
	e.start(t)

	purges := func(ws string) int {
		var n int
		require.NoError(t, e.rt.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'vigil.retention_purge' AND args->>'workspace_id' = $1`, ws).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return purges(limited) == 1 }, wait, tick)
	// The purge itself runs and succeeds (nothing to delete).
	require.Eventually(t, func() bool {
		var state string
		require.NoError(t, e.rt.pool.QueryRow(ctx, `SELECT state FROM river_job WHERE kind = 'vigil.retention_purge'`).Scan(&state))
		return state == "completed"
	}, wait, tick)
	require.Zero(t, purges(forever))
}
