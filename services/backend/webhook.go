package backend

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Webhook is an integrator's endpoint for events.
type Webhook struct {
	ID         uuid.UUID
	URL        string
	Secret     string
	EventTypes []int16
	GroupIDs   []uuid.UUID
	CameraIDs  []uuid.UUID
	Enabled    bool
	BatchSize  int32
	CreateTime time.Time
	UpdateTime time.Time
}

// Delivery is one delivery attempt.
type Delivery struct {
	ID           uuid.UUID
	WebhookID    uuid.UUID
	EventIDs     []string
	Attempt      int32
	StatusCode   int32
	Succeeded    bool
	Error        string
	DeliveryTime time.Time
	DurationMS   int32
}

func (w *Webhook) validate() error {
	if err := checkHTTPURL("webhook.url", w.URL); err != nil {
		return err
	}
	if err := checkText("webhook.secret", w.Secret, true, maxNameLen); err != nil {
		return err
	}
	if len(w.Secret) < 16 {
		return invalid("webhook.secret", "at least 16 characters")
	}
	for _, t := range w.EventTypes {
		if t < 1 || t > 2 {
			return invalid("webhook.event_types", "unknown event type %d", t)
		}
	}
	if w.BatchSize < 0 || w.BatchSize > 100 {
		return invalid("webhook.batch_size", "must be within 0..100")
	}
	if w.BatchSize == 0 {
		w.BatchSize = 1
	}
	return nil
}

const webhookColumns = `id, url, secret, event_types, group_ids, camera_ids, enabled, batch_size, create_time, update_time`

func scanWebhook(row pgx.Row) (*Webhook, error) {
	w := &Webhook{}
	if err := row.Scan(&w.ID, &w.URL, &w.Secret, &w.EventTypes, &w.GroupIDs, &w.CameraIDs, &w.Enabled, &w.BatchSize,
		&w.CreateTime, &w.UpdateTime); err != nil {
		return nil, dbErr(err)
	}
	return w, nil
}

func (b *Backend) CreateWebhook(ctx context.Context, sc scope, w *Webhook) (*Webhook, error) {
	if w.Secret == "" {
		w.Secret = newSecret("whs_")
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	if err := b.checkGroups(ctx, sc, w.GroupIDs); err != nil {
		return nil, fmt.Errorf("webhook.group_ids: %w", err)
	}
	out, err := scanWebhook(b.db.q(ctx).QueryRow(ctx, `INSERT INTO webhooks (id, workspace_id, url, secret, event_types, group_ids,
		camera_ids, enabled, batch_size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING `+webhookColumns,
		newID(), sc.workspace, w.URL, w.Secret, w.EventTypes, w.GroupIDs, w.CameraIDs, w.Enabled, w.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("create webhook: %w", err)
	}
	return out, nil
}

func (b *Backend) GetWebhook(ctx context.Context, sc scope, webhookID string) (*Webhook, error) {
	id, err := parseID("webhook_id", webhookID)
	if err != nil {
		return nil, err
	}
	w, err := scanWebhook(b.db.q(ctx).QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE workspace_id = $1 AND id = $2`, sc.workspace, id))
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", webhookID, err)
	}
	return w, nil
}

func (b *Backend) ListWebhooks(ctx context.Context, sc scope, size int32, token string) ([]*Webhook, string, error) {
	ws, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+webhookColumns+` FROM webhooks
		WHERE workspace_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, scanWebhook, func(w *Webhook) uuid.UUID { return w.ID }, sc.workspace)
	if err != nil {
		return nil, "", fmt.Errorf("list webhooks: %w", err)
	}
	return ws, next, nil
}

func (b *Backend) UpdateWebhook(ctx context.Context, sc scope, webhookID string, set func(*Webhook)) (*Webhook, error) {
	w, err := b.GetWebhook(ctx, sc, webhookID)
	if err != nil {
		return nil, err
	}
	set(w)
	if err := w.validate(); err != nil {
		return nil, err
	}
	if err := b.checkGroups(ctx, sc, w.GroupIDs); err != nil {
		return nil, fmt.Errorf("webhook.group_ids: %w", err)
	}
	out, err := scanWebhook(b.db.q(ctx).QueryRow(ctx, `UPDATE webhooks SET url = $3, secret = $4, event_types = $5, group_ids = $6,
		camera_ids = $7, enabled = $8, batch_size = $9, update_time = now() WHERE workspace_id = $1 AND id = $2 RETURNING `+webhookColumns,
		sc.workspace, w.ID, w.URL, w.Secret, w.EventTypes, w.GroupIDs, w.CameraIDs, w.Enabled, w.BatchSize))
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", webhookID, err)
	}
	return out, nil
}

func (b *Backend) DeleteWebhook(ctx context.Context, sc scope, webhookID string) error {
	id, err := parseID("webhook_id", webhookID)
	if err != nil {
		return err
	}
	tag, err := b.db.q(ctx).Exec(ctx, `DELETE FROM webhooks WHERE workspace_id = $1 AND id = $2`, sc.workspace, id)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", dbErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("webhook %s: %w", webhookID, ErrNotFound)
	}
	return nil
}

const deliveryColumns = `id, webhook_id, event_ids, attempt, status_code, succeeded, error, delivery_time, duration_ms`

func scanDelivery(row pgx.Row) (*Delivery, error) {
	d := &Delivery{}
	if err := row.Scan(&d.ID, &d.WebhookID, &d.EventIDs, &d.Attempt, &d.StatusCode, &d.Succeeded, &d.Error, &d.DeliveryTime,
		&d.DurationMS); err != nil {
		return nil, dbErr(err)
	}
	return d, nil
}

func (b *Backend) ListDeliveries(ctx context.Context, sc scope, webhookID string, size int32, token string) ([]*Delivery, string, error) {
	w, err := b.GetWebhook(ctx, sc, webhookID)
	if err != nil {
		return nil, "", err
	}
	ds, next, err := listPage(ctx, b.db.q(ctx), size, token, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE workspace_id = $1 AND webhook_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4`, scanDelivery,
		func(d *Delivery) uuid.UUID { return d.ID }, sc.workspace, w.ID)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	return ds, next, nil
}

// MatchWebhooks returns the enabled webhooks whose filters accept an event.
func (b *Backend) MatchWebhooks(ctx context.Context, sc scope, eventType int16, groupID, cameraID string) ([]*Webhook, error) {
	rows, err := b.db.q(ctx).Query(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE workspace_id = $1 AND enabled ORDER BY id`, sc.workspace)
	if err != nil {
		return nil, fmt.Errorf("match webhooks: %w", dbErr(err))
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Webhook, error) { return scanWebhook(r) })
	if err != nil {
		return nil, fmt.Errorf("match webhooks: %w", dbErr(err))
	}
	gid, _ := uuid.Parse(groupID)
	cid, _ := uuid.Parse(cameraID)
	var out []*Webhook
	for _, w := range all {
		if len(w.EventTypes) > 0 && !slices.Contains(w.EventTypes, eventType) {
			continue
		}
		if len(w.GroupIDs) > 0 && !slices.Contains(w.GroupIDs, gid) {
			continue
		}
		if len(w.CameraIDs) > 0 && !slices.Contains(w.CameraIDs, cid) {
			continue
		}
		out = append(out, w)
	}
	return out, nil
}

// RecordDelivery appends a delivery attempt to a webhook's log.
func (b *Backend) RecordDelivery(ctx context.Context, sc scope, d *Delivery) (*Delivery, error) {
	if d.Attempt < 1 {
		return nil, invalid("delivery.attempt", "must be at least 1")
	}
	if err := checkText("delivery.error", d.Error, false, 4000); err != nil {
		return nil, err
	}
	if d.DeliveryTime.IsZero() {
		d.DeliveryTime = time.Now()
	}
	if d.EventIDs == nil {
		d.EventIDs = []string{}
	}
	out, err := scanDelivery(b.db.q(ctx).QueryRow(ctx, `INSERT INTO webhook_deliveries (id, workspace_id, webhook_id, event_ids, attempt,
		status_code, succeeded, error, delivery_time, duration_ms)
		SELECT $1, $2, w.id, $4, $5, $6, $7, $8, $9, $10 FROM webhooks w WHERE w.workspace_id = $2 AND w.id = $3
		RETURNING `+deliveryColumns, newID(), sc.workspace, d.WebhookID, d.EventIDs, d.Attempt, d.StatusCode, d.Succeeded, d.Error,
		d.DeliveryTime, d.DurationMS))
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", d.WebhookID, err)
	}
	return out, nil
}
