package db_test

import (
	"context"
	"embed"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/dbtest"
)

//go:embed testdata
var testMigrations embed.FS

func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`)
	require.NoError(t, err)
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	return names
}

func TestMigratePerServiceTables(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()

	res, err := db.Migrate(ctx, d.Pool, testMigrations, "testdata/migrations_a", "goose_a")
	require.NoError(t, err)
	require.Len(t, res, 2)
	res, err = db.Migrate(ctx, d.Pool, testMigrations, "testdata/migrations_b", "goose_b")
	require.NoError(t, err)
	require.Len(t, res, 1, "b is versioned apart from a")

	// Idempotent.
	res, err = db.Migrate(ctx, d.Pool, testMigrations, "testdata/migrations_a", "goose_a")
	require.NoError(t, err)
	require.Empty(t, res)

	require.Equal(t, []string{"cameras", "goose_a", "goose_b", "people"}, tables(t, d.Pool))
	_, err = d.Pool.Exec(ctx, "INSERT INTO people (id, name, email) VALUES (1, 'a', 'a@example.com')")
	require.NoError(t, err)

	_, err = db.Migrate(ctx, d.Pool, testMigrations, "testdata/migrations_a", "bad-name;")
	require.Error(t, err)
	_, err = db.Migrate(ctx, d.Pool, testMigrations, "testdata/nope", "goose_c")
	require.Error(t, err)
}

func TestConcurrentMigrateAppliesOnce(t *testing.T) {
	d := dbtest.New(t)
	var g errgroup.Group
	applied := make([]int, 4)
	for i := range applied {
		g.Go(func() error {
			res, err := db.Migrate(context.Background(), d.Pool, testMigrations, "testdata/migrations_a", "goose_a")
			applied[i] = len(res)
			return err
		})
	}
	require.NoError(t, g.Wait())
	total := 0
	for _, n := range applied {
		total += n
	}
	require.Equal(t, 2, total, "each migration applied exactly once across racing processes")
}

func TestModuleMigratesContributedSetsOnStart(t *testing.T) {
	d := dbtest.New(t)
	cfg, err := config.Parse(nil, func(k string) (string, bool) {
		if k == "VIGIL_DATABASE_URL" {
			return d.URL, true
		}
		return "", false
	}, func() []string { return nil })
	require.NoError(t, err)

	var pool *pgxpool.Pool
	app := fxtest.New(t,
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		db.Module,
		db.AsMigrations("a", testMigrations, "testdata/migrations_a"),
		db.AsMigrations("b", testMigrations, "testdata/migrations_b"),
		fx.Populate(&pool),
	)
	app.RequireStart()
	require.Equal(t, []string{"cameras", "goose_a", "goose_b", "people"}, tables(t, pool))
	app.RequireStop()
}

func TestMigrateAllRunsCustomMigrators(t *testing.T) {
	d := dbtest.New(t)
	ran := 0
	sets := []db.Migrations{
		{Service: "a", FS: testMigrations, Dir: "testdata/migrations_a"},
		{Service: "queue", Run: func(ctx context.Context, pool *pgxpool.Pool) error {
			ran++
			_, err := pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS queue_jobs (id bigint)")
			return err
		}},
	}
	require.NoError(t, db.MigrateAll(context.Background(), d.Pool, sets, slog.New(slog.DiscardHandler)))
	require.Equal(t, 1, ran)
	require.Equal(t, []string{"goose_a", "people", "queue_jobs"}, tables(t, d.Pool))

	dup := append(sets, db.Migrations{Service: "a", FS: testMigrations, Dir: "testdata/migrations_a"})
	require.ErrorContains(t, db.MigrateAll(context.Background(), d.Pool, dup, slog.New(slog.DiscardHandler)), "twice")
}

func TestPingFailsClearly(t *testing.T) {
	pool, err := db.NewPool(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	defer pool.Close()
	err = db.Ping(context.Background(), pool)
	require.ErrorContains(t, err, "does not answer")
	require.ErrorContains(t, err, "127.0.0.1:1")
}
