package main

import (
	"context"
	"embed"
	"net"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/datadir"
	"github.com/vigilhq/vigil/platform/db"
)

//go:embed testdata/migrations
var probeMigrations embed.FS

func TestMigrateAppliesEveryComponentsMigrations(t *testing.T) {
	cfg := testConfig(t)
	// A running process holds the configured gRPC port; migrate must not need it.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	cfg.GRPCListen = busy.Addr().String()

	// ... nor its data folders (held here as a running process would hold them).
	held, err := datadir.Acquire(filepath.Join(cfg.DataDir, "kafka"))
	require.NoError(t, err)
	defer held.Release()

	probe := db.AsMigrations("probe", probeMigrations, "testdata/migrations")
	require.NoError(t, runMigrate(context.Background(), cfg, probe))
	require.NoError(t, runMigrate(context.Background(), cfg, probe), "idempotent")

	conn, err := pgx.Connect(context.Background(), cfg.DatabaseURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE ANY (ARRAY['goose_%', 'migrate_probe']) ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Subset(t, tables, []string{"goose_probe", "migrate_probe"})
	// Every component that contributes goose migrations has its version table.
	for _, c := range []string{"backend", "licensing", "matcher"} {
		require.Contains(t, tables, "goose_"+c)
	}

	// River's tables (the task queue), at the version this build's River needs.
	rows, err = conn.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'river\_%' ORDER BY 1`)
	require.NoError(t, err)
	riverTables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Subset(t, riverTables, []string{"river_job", "river_leader", "river_migration", "river_queue"})
	var riverVersion int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT max(version) FROM river_migration`).Scan(&riverVersion))
	migrator, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	require.NoError(t, err)
	all := migrator.AllVersions()
	require.Equal(t, all[len(all)-1].Version, riverVersion, "every River migration applied")
}
