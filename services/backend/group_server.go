package backend

import (
	"context"

	"github.com/google/uuid"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
)

// GroupServer implements backendv1.GroupServiceServer.
type GroupServer struct {
	backendv1.UnimplementedGroupServiceServer
	b *Backend
}

func groupToProto(g *Group) *backendv1.Group {
	return &backendv1.Group{
		Id: g.ID.String(), Name: g.Name, Color: g.Color, Threshold: g.Threshold, Notify: g.Notify,
		PersonCount: g.PersonCount, CreateTime: ts(g.CreateTime), UpdateTime: ts(g.UpdateTime),
	}
}

func (s *GroupServer) CreateGroup(ctx context.Context, req *backendv1.CreateGroupRequest) (*backendv1.CreateGroupResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	in := req.GetGroup()
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreateGroup", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateGroupResponse, error) {
			g, err := s.b.CreateGroup(ctx, sc, &Group{Name: in.GetName(), Color: in.GetColor(), Threshold: in.GetThreshold(), Notify: in.GetNotify()})
			if err != nil {
				return nil, err
			}
			return &backendv1.CreateGroupResponse{Group: groupToProto(g)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *GroupServer) GetGroup(ctx context.Context, req *backendv1.GetGroupRequest) (*backendv1.GetGroupResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	g, err := s.b.GetGroup(ctx, sc, req.GetGroupId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetGroupResponse{Group: groupToProto(g)}, nil
}

func (s *GroupServer) ListGroups(ctx context.Context, req *backendv1.ListGroupsRequest) (*backendv1.ListGroupsResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	gs, next, err := s.b.ListGroups(ctx, sc, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListGroupsResponse{NextPageToken: next}
	for _, g := range gs {
		out.Groups = append(out.Groups, groupToProto(g))
	}
	return out, nil
}

func (s *GroupServer) UpdateGroup(ctx context.Context, req *backendv1.UpdateGroupRequest) (*backendv1.UpdateGroupResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	paths, err := maskPaths(req.GetUpdateMask(), "name", "color", "threshold", "notify")
	if err != nil {
		return nil, toStatus(err)
	}
	in := req.GetGroup()
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdateGroup", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdateGroupResponse, error) {
			g, err := s.b.UpdateGroup(ctx, sc, in.GetId(), func(g *Group) {
				if paths["name"] {
					g.Name = in.GetName()
				}
				if paths["color"] {
					g.Color = in.GetColor()
				}
				if paths["threshold"] {
					g.Threshold = in.GetThreshold()
				}
				if paths["notify"] {
					g.Notify = in.GetNotify()
				}
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdateGroupResponse{Group: groupToProto(g)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *GroupServer) DeleteGroup(ctx context.Context, req *backendv1.DeleteGroupRequest) (*backendv1.DeleteGroupResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	var members []uuid.UUID
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeleteGroup", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeleteGroupResponse, error) {
			var err error
			members, err = s.b.DeleteGroup(ctx, sc, req.GetGroupId())
			return &backendv1.DeleteGroupResponse{}, err
		}, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	// After the commit, outside the transaction: the matcher learns the members' groups.
	for _, p := range members {
		if err := s.b.syncMatcherGroups(ctx, sc, p); err != nil {
			return nil, toStatus(err)
		}
	}
	return resp, nil
}
