package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// reportAllUsage tells licensing every workspace's counts, so limits hold from the start
// (licensing keeps only the latest report per workspace and resource, in memory).
func (b *Backend) reportAllUsage(ctx context.Context) error {
	rows, err := b.db.pool.Query(ctx, `SELECT w.id,
		(SELECT count(*) FROM persons p WHERE p.workspace_id = w.id),
		(SELECT count(*) FROM agents a WHERE a.workspace_id = w.id),
		(SELECT count(*) FROM cameras c WHERE c.workspace_id = w.id) FROM workspaces w`)
	if err != nil {
		return fmt.Errorf("count usage: %w", dbErr(err))
	}
	var reports []*licensingv1.UsageReport
	var ws uuid.UUID
	var persons, agents, cameras int64
	if _, err := pgx.ForEachRow(rows, []any{&ws, &persons, &agents, &cameras}, func() error {
		reports = append(reports,
			&licensingv1.UsageReport{WorkspaceId: ws.String(), Resource: licensingv1.Resource_RESOURCE_PERSONS, Count: persons},
			&licensingv1.UsageReport{WorkspaceId: ws.String(), Resource: licensingv1.Resource_RESOURCE_AGENTS, Count: agents},
			&licensingv1.UsageReport{WorkspaceId: ws.String(), Resource: licensingv1.Resource_RESOURCE_CAMERAS, Count: cameras})
		return nil
	}); err != nil {
		return fmt.Errorf("count usage: %w", dbErr(err))
	}
	lic, err := b.licensing()
	if err != nil {
		return err
	}
	ctx, cancel := b.peerCtx(ctx)
	defer cancel()
	if _, err := lic.ReportUsage(ctx, &licensingv1.ReportUsageRequest{Reports: reports}); err != nil {
		return peerErr("licensing", err)
	}
	return nil
}

// reportUsageUntilDone retries reportAllUsage (licensing, maybe in this very process,
// starts serving after the backend's start hook) until it succeeds or ctx ends.
func (b *Backend) reportUsageUntilDone(ctx context.Context) {
	delay := 100 * time.Millisecond
	for {
		err := b.reportAllUsage(ctx)
		if err == nil {
			b.usageOnce.Do(func() { close(b.usageReported) })
			return
		}
		if delay >= 10*time.Second {
			b.log.WarnContext(ctx, "usage report to licensing failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// awaitUsageReport holds limit checks until licensing has this backend's counts (or the
// peer timeout passes, then the check goes ahead and licensing answers as it can): a
// check answered before the first report would count from zero.
func (b *Backend) awaitUsageReport(ctx context.Context) {
	if b.usageReported == nil {
		return
	}
	t := time.NewTimer(b.cfg.PeerTimeout)
	defer t.Stop()
	select {
	case <-b.usageReported:
	case <-ctx.Done():
	case <-t.C:
	}
}

// runUsageFlusher sends batched usage reports until ctx ends, then once more.
func (b *Backend) runUsageFlusher(ctx context.Context) {
	t := time.NewTicker(usageFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.flushUsage(context.WithoutCancel(ctx))
			return
		case <-b.usageKick:
			select {
			case <-ctx.Done():
			case <-t.C: // batch what arrives meanwhile
			}
			b.flushUsage(context.WithoutCancel(ctx))
		}
	}
}
