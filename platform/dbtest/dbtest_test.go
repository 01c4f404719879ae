package dbtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func exists(t *testing.T, name string) bool {
	conn, err := pgx.Connect(context.Background(), AdminURL())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
	return n == 1
}

func TestFreshDatabaseDroppedOnCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		d := New(t)
		name = d.Name
		require.NotEqual(t, New(t).Name, name, "every call is a different database")
		var current string
		require.NoError(t, d.Pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&current))
		require.Equal(t, name, current)
		require.True(t, exists(t, name))
	})
	require.False(t, exists(t, name), "dropped when the test ended")
}
