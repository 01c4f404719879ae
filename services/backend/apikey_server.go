package backend

import (
	"context"
	"time"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
)

// APIKeyServer implements backendv1.ApiKeyServiceServer.
type APIKeyServer struct {
	backendv1.UnimplementedApiKeyServiceServer
	b *Backend
}

func apiKeyToProto(k *APIKey) *backendv1.ApiKey {
	return &backendv1.ApiKey{
		Id: k.ID.String(), Name: k.Name, Role: k.Role, Prefix: k.Prefix, CreateTime: ts(k.CreateTime),
		ExpireTime: tsPtr(k.ExpireTime), RevokeTime: tsPtr(k.RevokeTime),
	}
}

func (s *APIKeyServer) CreateApiKey(ctx context.Context, req *backendv1.CreateApiKeyRequest) (*backendv1.CreateApiKeyResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	var expire *time.Time
	if req.ExpireTime != nil {
		if err := req.ExpireTime.CheckValid(); err != nil {
			return nil, toStatus(invalid("expire_time", "%v", err))
		}
		t := req.ExpireTime.AsTime()
		expire = &t
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreateApiKey", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateApiKeyResponse, error) {
			k, secret, err := s.b.CreateAPIKey(ctx, sc, req.GetName(), req.GetRole(), expire)
			if err != nil {
				return nil, err
			}
			return &backendv1.CreateApiKeyResponse{ApiKey: apiKeyToProto(k), Secret: secret}, nil
		}, func(r *backendv1.CreateApiKeyResponse) { r.Secret = "" })
	return resp, toStatus(err)
}

func (s *APIKeyServer) GetApiKey(ctx context.Context, req *backendv1.GetApiKeyRequest) (*backendv1.GetApiKeyResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	k, err := s.b.GetAPIKey(ctx, sc, req.GetApiKeyId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetApiKeyResponse{ApiKey: apiKeyToProto(k)}, nil
}

func (s *APIKeyServer) ListApiKeys(ctx context.Context, req *backendv1.ListApiKeysRequest) (*backendv1.ListApiKeysResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	ks, next, err := s.b.ListAPIKeys(ctx, sc, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListApiKeysResponse{NextPageToken: next}
	for _, k := range ks {
		out.ApiKeys = append(out.ApiKeys, apiKeyToProto(k))
	}
	return out, nil
}

func (s *APIKeyServer) RevokeApiKey(ctx context.Context, req *backendv1.RevokeApiKeyRequest) (*backendv1.RevokeApiKeyResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "RevokeApiKey", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.RevokeApiKeyResponse, error) {
			k, err := s.b.RevokeAPIKey(ctx, sc, req.GetApiKeyId())
			if err != nil {
				return nil, err
			}
			return &backendv1.RevokeApiKeyResponse{ApiKey: apiKeyToProto(k)}, nil
		}, nil)
	return resp, toStatus(err)
}
