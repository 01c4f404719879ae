package backend

import (
	"context"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
)

// WorkspaceServer implements backendv1.WorkspaceServiceServer.
type WorkspaceServer struct {
	backendv1.UnimplementedWorkspaceServiceServer
	b *Backend
}

func workspaceToProto(w *Workspace) *backendv1.Workspace {
	return &backendv1.Workspace{
		Id: w.ID.String(), Name: w.Name,
		Settings: &backendv1.WorkspaceSettings{
			RetentionDays: w.RetentionDays, AnonymousMode: w.AnonymousMode,
			DefaultThreshold: w.DefaultThreshold, DefaultTopK: w.DefaultTopK,
		},
		CreateTime: ts(w.CreateTime), UpdateTime: ts(w.UpdateTime),
	}
}

func (s *WorkspaceServer) CreateWorkspace(ctx context.Context, req *backendv1.CreateWorkspaceRequest) (*backendv1.CreateWorkspaceResponse, error) {
	resp, err := mutate(ctx, s.b.db, systemKey, "CreateWorkspace", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateWorkspaceResponse, error) {
			st := req.GetSettings()
			w, admin, err := s.b.CreateWorkspace(ctx, &Workspace{
				Name: req.GetName(), RetentionDays: st.GetRetentionDays(), AnonymousMode: st.GetAnonymousMode(),
				DefaultThreshold: st.GetDefaultThreshold(), DefaultTopK: st.GetDefaultTopK(),
			}, req.GetAdminEmail(), false)
			if err != nil {
				return nil, err
			}
			out := &backendv1.CreateWorkspaceResponse{Workspace: workspaceToProto(w)}
			if admin != nil {
				out.AdminUserId, out.AdminPassword = admin.UserID.String(), admin.Password
			}
			return out, nil
		}, func(r *backendv1.CreateWorkspaceResponse) { r.AdminPassword = "" })
	return resp, toStatus(err)
}

func (s *WorkspaceServer) ListWorkspaces(ctx context.Context, req *backendv1.ListWorkspacesRequest) (*backendv1.ListWorkspacesResponse, error) {
	ws, next, err := s.b.ListWorkspaces(ctx, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListWorkspacesResponse{NextPageToken: next}
	for _, w := range ws {
		out.Workspaces = append(out.Workspaces, workspaceToProto(w))
	}
	return out, nil
}

func (s *WorkspaceServer) GetWorkspace(ctx context.Context, _ *backendv1.GetWorkspaceRequest) (*backendv1.GetWorkspaceResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	w, err := s.b.GetWorkspace(ctx, sc)
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetWorkspaceResponse{Workspace: workspaceToProto(w)}, nil
}

func (s *WorkspaceServer) UpdateWorkspace(ctx context.Context, req *backendv1.UpdateWorkspaceRequest) (*backendv1.UpdateWorkspaceResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	paths, err := maskPaths(req.GetUpdateMask(), "name", "settings", "settings.retention_days", "settings.anonymous_mode",
		"settings.default_threshold", "settings.default_top_k")
	if err != nil {
		return nil, toStatus(err)
	}
	in := req.GetWorkspace()
	st := in.GetSettings()
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdateWorkspace", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdateWorkspaceResponse, error) {
			w, err := s.b.UpdateWorkspace(ctx, sc, func(w *Workspace) {
				all := paths["settings"]
				if paths["name"] {
					w.Name = in.GetName()
				}
				if all || paths["settings.retention_days"] {
					w.RetentionDays = st.GetRetentionDays()
				}
				if all || paths["settings.anonymous_mode"] {
					w.AnonymousMode = st.GetAnonymousMode()
				}
				if all || paths["settings.default_threshold"] {
					w.DefaultThreshold = st.GetDefaultThreshold()
				}
				if all || paths["settings.default_top_k"] {
					w.DefaultTopK = st.GetDefaultTopK()
				}
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdateWorkspaceResponse{Workspace: workspaceToProto(w)}, nil
		}, nil)
	return resp, toStatus(err)
}
