package backend

import (
	"context"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
)

// WebhookServer implements backendv1.WebhookServiceServer.
type WebhookServer struct {
	backendv1.UnimplementedWebhookServiceServer
	b *Backend
}

// webhookToProto leaves the secret out unless withSecret.
func webhookToProto(w *Webhook, withSecret bool) *backendv1.Webhook {
	out := &backendv1.Webhook{
		Id: w.ID.String(), Url: w.URL, GroupIds: idStrings(w.GroupIDs), CameraIds: idStrings(w.CameraIDs),
		Enabled: w.Enabled, BatchSize: w.BatchSize, CreateTime: ts(w.CreateTime), UpdateTime: ts(w.UpdateTime),
	}
	for _, t := range w.EventTypes {
		out.EventTypes = append(out.EventTypes, backendv1.EventType(t))
	}
	if withSecret {
		out.Secret = w.Secret
	}
	return out
}

func webhookFromProto(in *backendv1.Webhook) (*Webhook, error) {
	groups, err := parseIDs("webhook.group_ids", in.GetGroupIds())
	if err != nil {
		return nil, err
	}
	cams, err := parseIDs("webhook.camera_ids", in.GetCameraIds())
	if err != nil {
		return nil, err
	}
	w := &Webhook{URL: in.GetUrl(), Secret: in.GetSecret(), GroupIDs: groups, CameraIDs: cams, Enabled: in.GetEnabled(),
		BatchSize: in.GetBatchSize(), EventTypes: []int16{}}
	for _, t := range in.GetEventTypes() {
		w.EventTypes = append(w.EventTypes, int16(t))
	}
	return w, nil
}

func deliveryToProto(d *Delivery) *backendv1.WebhookDelivery {
	return &backendv1.WebhookDelivery{
		Id: d.ID.String(), WebhookId: d.WebhookID.String(), EventIds: d.EventIDs, Attempt: d.Attempt, StatusCode: d.StatusCode,
		Succeeded: d.Succeeded, Error: d.Error, DeliveryTime: ts(d.DeliveryTime), DurationMs: d.DurationMS,
	}
}

func (s *WebhookServer) CreateWebhook(ctx context.Context, req *backendv1.CreateWebhookRequest) (*backendv1.CreateWebhookResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	in, err := webhookFromProto(req.GetWebhook())
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreateWebhook", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateWebhookResponse, error) {
			w, err := s.b.CreateWebhook(ctx, sc, in)
			if err != nil {
				return nil, err
			}
			return &backendv1.CreateWebhookResponse{Webhook: webhookToProto(w, false), Secret: w.Secret}, nil
		}, func(r *backendv1.CreateWebhookResponse) { r.Secret = "" })
	return resp, toStatus(err)
}

func (s *WebhookServer) GetWebhook(ctx context.Context, req *backendv1.GetWebhookRequest) (*backendv1.GetWebhookResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	w, err := s.b.GetWebhook(ctx, sc, req.GetWebhookId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetWebhookResponse{Webhook: webhookToProto(w, false)}, nil
}

func (s *WebhookServer) ListWebhooks(ctx context.Context, req *backendv1.ListWebhooksRequest) (*backendv1.ListWebhooksResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	ws, next, err := s.b.ListWebhooks(ctx, sc, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListWebhooksResponse{NextPageToken: next}
	for _, w := range ws {
		out.Webhooks = append(out.Webhooks, webhookToProto(w, false))
	}
	return out, nil
}

func (s *WebhookServer) UpdateWebhook(ctx context.Context, req *backendv1.UpdateWebhookRequest) (*backendv1.UpdateWebhookResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	all := []string{"url", "secret", "event_types", "group_ids", "camera_ids", "enabled", "batch_size"}
	paths, err := maskPaths(req.GetUpdateMask(), all...)
	if err != nil {
		return nil, toStatus(err)
	}
	if len(req.GetUpdateMask().GetPaths()) == 0 {
		delete(paths, "secret") // documented: an empty mask keeps the secret
	}
	in, err := webhookFromProto(req.GetWebhook())
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdateWebhook", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdateWebhookResponse, error) {
			w, err := s.b.UpdateWebhook(ctx, sc, req.GetWebhook().GetId(), func(w *Webhook) {
				if paths["url"] {
					w.URL = in.URL
				}
				if paths["secret"] {
					w.Secret = in.Secret
				}
				if paths["event_types"] {
					w.EventTypes = in.EventTypes
				}
				if paths["group_ids"] {
					w.GroupIDs = in.GroupIDs
				}
				if paths["camera_ids"] {
					w.CameraIDs = in.CameraIDs
				}
				if paths["enabled"] {
					w.Enabled = in.Enabled
				}
				if paths["batch_size"] {
					w.BatchSize = in.BatchSize
				}
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdateWebhookResponse{Webhook: webhookToProto(w, false)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *WebhookServer) DeleteWebhook(ctx context.Context, req *backendv1.DeleteWebhookRequest) (*backendv1.DeleteWebhookResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeleteWebhook", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeleteWebhookResponse, error) {
			return &backendv1.DeleteWebhookResponse{}, s.b.DeleteWebhook(ctx, sc, req.GetWebhookId())
		}, nil)
	return resp, toStatus(err)
}

func (s *WebhookServer) ListWebhookDeliveries(ctx context.Context, req *backendv1.ListWebhookDeliveriesRequest) (*backendv1.ListWebhookDeliveriesResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	ds, next, err := s.b.ListDeliveries(ctx, sc, req.GetWebhookId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListWebhookDeliveriesResponse{NextPageToken: next}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryToProto(d))
	}
	return out, nil
}

func (s *WebhookServer) MatchWebhooks(ctx context.Context, req *backendv1.MatchWebhooksRequest) (*backendv1.MatchWebhooksResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	ws, err := s.b.MatchWebhooks(ctx, sc, int16(req.GetEventType()), req.GetGroupId(), req.GetCameraId())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.MatchWebhooksResponse{}
	for _, w := range ws {
		out.Webhooks = append(out.Webhooks, webhookToProto(w, true))
	}
	return out, nil
}

func (s *WebhookServer) RecordWebhookDelivery(ctx context.Context, req *backendv1.RecordWebhookDeliveryRequest) (*backendv1.RecordWebhookDeliveryResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	in := req.GetDelivery()
	wid, err := parseID("delivery.webhook_id", in.GetWebhookId())
	if err != nil {
		return nil, toStatus(err)
	}
	d := &Delivery{WebhookID: wid, EventIDs: in.GetEventIds(), Attempt: in.GetAttempt(), StatusCode: in.GetStatusCode(),
		Succeeded: in.GetSucceeded(), Error: in.GetError(), DurationMS: in.GetDurationMs()}
	if in.DeliveryTime != nil {
		d.DeliveryTime = in.DeliveryTime.AsTime()
	}
	out, err := s.b.RecordDelivery(ctx, sc, d)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.RecordWebhookDeliveryResponse{Delivery: deliveryToProto(out)}, nil
}
