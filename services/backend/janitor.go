package backend

import (
	"context"
	"time"
)

// RequestIDRetention is how long a request_id's result is kept for replay.
const RequestIDRetention = 24 * time.Hour

// janitorEvery is how often expired request ids and sessions are deleted.
const janitorEvery = 10 * time.Minute

// sweep deletes request-id results past RequestIDRetention and expired sessions.
func (b *Backend) sweep(ctx context.Context) (int64, error) {
	tag, err := b.db.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE create_time < $1`, time.Now().Add(-RequestIDRetention))
	if err != nil {
		return 0, dbErr(err)
	}
	n := tag.RowsAffected()
	tag, err = b.db.pool.Exec(ctx, `DELETE FROM sessions WHERE expire_time < now()`)
	if err != nil {
		return n, dbErr(err)
	}
	return n + tag.RowsAffected(), nil
}

// runJanitor sweeps every janitorEvery until ctx ends. Several replicas sweeping at once
// only delete the same rows.
func (b *Backend) runJanitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		if n, err := b.sweep(ctx); err != nil && ctx.Err() == nil {
			b.log.WarnContext(ctx, "sweep of expired request ids and sessions failed", "err", err)
		} else if n > 0 {
			b.log.DebugContext(ctx, "swept expired request ids and sessions", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
