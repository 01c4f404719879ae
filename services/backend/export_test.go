package backend

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SweepForTest runs one sweep on pool.
func SweepForTest(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	b := NewBackend(pool, Config{}, slog.New(slog.DiscardHandler), nil, nil, nil, nil)
	return b.sweep(ctx)
}
