package matcher

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/dbtest"
)

// newTestDB creates a fresh database with the matcher's migrations applied; it is
// dropped when the test ends.
func newTestDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := dbtest.New(t).Pool
	require.NoError(t, Migrate(context.Background(), pool))
	require.NoError(t, Migrate(context.Background(), pool), "migrations are idempotent")
	return pool
}
