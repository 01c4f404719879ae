package backend

import (
	"context"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// AgentServer implements backendv1.AgentServiceServer.
type AgentServer struct {
	backendv1.UnimplementedAgentServiceServer
	b *Backend
}

func agentToProto(a *Agent) *backendv1.Agent {
	return &backendv1.Agent{
		Id: a.ID.String(), Name: a.Name, Version: a.Version, Status: backendv1.Agent_Status(a.Status),
		LastSeenTime: tsPtr(a.LastSeenTime), SyncCursor: a.SyncCursor, CreateTime: ts(a.CreateTime), TokenPrefix: a.TokenPrefix,
	}
}

func cameraToProto(c *Camera) *backendv1.Camera {
	return &backendv1.Camera{
		Id: c.ID.String(), AgentId: c.AgentID.String(), Name: c.Name, Location: c.Location, SourceUrl: c.SourceURL,
		Settings: &backendv1.CameraSettings{MinFaceSize: c.MinFaceSize, RegionOfInterest: boxOf(c.ROI)},
		Status:   backendv1.Camera_Status(c.Status), CreateTime: ts(c.CreateTime), UpdateTime: ts(c.UpdateTime),
	}
}

func (s *AgentServer) CreateAgent(ctx context.Context, req *backendv1.CreateAgentRequest) (*backendv1.CreateAgentResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if !s.b.db.seen(ctx, sc.key(), req.GetRequestId()) {
		if err := s.b.checkLimit(ctx, sc, licensingv1.Resource_RESOURCE_AGENTS, 1); err != nil {
			return nil, toStatus(err)
		}
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreateAgent", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateAgentResponse, error) {
			a, token, err := s.b.CreateAgent(ctx, sc, req.GetName())
			if err != nil {
				return nil, err
			}
			return &backendv1.CreateAgentResponse{Agent: agentToProto(a), Token: token}, nil
		}, func(r *backendv1.CreateAgentResponse) { r.Token = "" })
	if err != nil {
		return nil, toStatus(err)
	}
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_AGENTS)
	return resp, nil
}

func (s *AgentServer) GetAgent(ctx context.Context, req *backendv1.GetAgentRequest) (*backendv1.GetAgentResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	a, err := s.b.GetAgent(ctx, sc, req.GetAgentId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetAgentResponse{Agent: agentToProto(a)}, nil
}

func (s *AgentServer) ListAgents(ctx context.Context, req *backendv1.ListAgentsRequest) (*backendv1.ListAgentsResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	as, next, err := s.b.ListAgents(ctx, sc, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListAgentsResponse{NextPageToken: next}
	for _, a := range as {
		out.Agents = append(out.Agents, agentToProto(a))
	}
	return out, nil
}

func (s *AgentServer) UpdateAgent(ctx context.Context, req *backendv1.UpdateAgentRequest) (*backendv1.UpdateAgentResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdateAgent", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdateAgentResponse, error) {
			a, err := s.b.RenameAgent(ctx, sc, req.GetAgentId(), req.GetName())
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdateAgentResponse{Agent: agentToProto(a)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *AgentServer) DeleteAgent(ctx context.Context, req *backendv1.DeleteAgentRequest) (*backendv1.DeleteAgentResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeleteAgent", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeleteAgentResponse, error) {
			return &backendv1.DeleteAgentResponse{}, s.b.DeleteAgent(ctx, sc, req.GetAgentId())
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_AGENTS)
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_CAMERAS)
	return resp, nil
}

func (s *AgentServer) RotateAgentToken(ctx context.Context, req *backendv1.RotateAgentTokenRequest) (*backendv1.RotateAgentTokenResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "RotateAgentToken", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.RotateAgentTokenResponse, error) {
			a, token, err := s.b.RotateAgentToken(ctx, sc, req.GetAgentId())
			if err != nil {
				return nil, err
			}
			return &backendv1.RotateAgentTokenResponse{Agent: agentToProto(a), Token: token}, nil
		}, func(r *backendv1.RotateAgentTokenResponse) { r.Token = "" })
	return resp, toStatus(err)
}

func (s *AgentServer) RecordAgentHeartbeat(ctx context.Context, req *backendv1.RecordAgentHeartbeatRequest) (*backendv1.RecordAgentHeartbeatResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	cams := make(map[string]int16, len(req.GetCameraStatus()))
	for id, st := range req.GetCameraStatus() {
		cams[id] = int16(st)
	}
	a, err := s.b.AgentHeartbeat(ctx, sc, req.GetAgentId(), int16(req.GetStatus()), req.GetVersion(), req.GetSyncCursor(), cams)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.RecordAgentHeartbeatResponse{Agent: agentToProto(a)}, nil
}

func cameraFromProto(c *backendv1.Camera) (*Camera, error) {
	out := &Camera{Name: c.GetName(), Location: c.GetLocation(), SourceURL: c.GetSourceUrl(), MinFaceSize: c.GetSettings().GetMinFaceSize()}
	if r := c.GetSettings().GetRegionOfInterest(); r != nil {
		out.ROI = []float32{r.GetX1(), r.GetY1(), r.GetX2(), r.GetY2()}
	}
	return out, nil
}

func (s *AgentServer) CreateCamera(ctx context.Context, req *backendv1.CreateCameraRequest) (*backendv1.CreateCameraResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	agentID, err := parseID("camera.agent_id", req.GetCamera().GetAgentId())
	if err != nil {
		return nil, toStatus(err)
	}
	in, _ := cameraFromProto(req.GetCamera())
	in.AgentID = agentID
	if !s.b.db.seen(ctx, sc.key(), req.GetRequestId()) {
		if err := s.b.checkLimit(ctx, sc, licensingv1.Resource_RESOURCE_CAMERAS, 1); err != nil {
			return nil, toStatus(err)
		}
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreateCamera", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateCameraResponse, error) {
			c, err := s.b.CreateCamera(ctx, sc, in)
			if err != nil {
				return nil, err
			}
			return &backendv1.CreateCameraResponse{Camera: cameraToProto(c)}, nil
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_CAMERAS)
	return resp, nil
}

func (s *AgentServer) GetCamera(ctx context.Context, req *backendv1.GetCameraRequest) (*backendv1.GetCameraResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.b.GetCamera(ctx, sc, req.GetCameraId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetCameraResponse{Camera: cameraToProto(c)}, nil
}

func (s *AgentServer) ListCameras(ctx context.Context, req *backendv1.ListCamerasRequest) (*backendv1.ListCamerasResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	cs, next, err := s.b.ListCameras(ctx, sc, req.GetAgentId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListCamerasResponse{NextPageToken: next}
	for _, c := range cs {
		out.Cameras = append(out.Cameras, cameraToProto(c))
	}
	return out, nil
}

func (s *AgentServer) UpdateCamera(ctx context.Context, req *backendv1.UpdateCameraRequest) (*backendv1.UpdateCameraResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	paths, err := maskPaths(req.GetUpdateMask(), "name", "location", "source_url", "settings")
	if err != nil {
		return nil, toStatus(err)
	}
	in, _ := cameraFromProto(req.GetCamera())
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdateCamera", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdateCameraResponse, error) {
			c, err := s.b.UpdateCamera(ctx, sc, req.GetCamera().GetId(), func(c *Camera) {
				if paths["name"] {
					c.Name = in.Name
				}
				if paths["location"] {
					c.Location = in.Location
				}
				if paths["source_url"] {
					c.SourceURL = in.SourceURL
				}
				if paths["settings"] {
					c.MinFaceSize, c.ROI = in.MinFaceSize, in.ROI
				}
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdateCameraResponse{Camera: cameraToProto(c)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *AgentServer) DeleteCamera(ctx context.Context, req *backendv1.DeleteCameraRequest) (*backendv1.DeleteCameraResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeleteCamera", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeleteCameraResponse, error) {
			return &backendv1.DeleteCameraResponse{}, s.b.DeleteCamera(ctx, sc, req.GetCameraId())
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	s.b.reportUsage(ctx, sc, licensingv1.Resource_RESOURCE_CAMERAS)
	return resp, nil
}
