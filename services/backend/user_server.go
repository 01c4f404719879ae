package backend

import (
	"context"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
)

// UserServer implements backendv1.UserServiceServer.
type UserServer struct {
	backendv1.UnimplementedUserServiceServer
	b *Backend
}

func userToProto(u *User) *backendv1.User {
	return &backendv1.User{Id: u.ID.String(), Email: u.Email, DisplayName: u.DisplayName, Role: u.Role, CreateTime: ts(u.CreateTime)}
}

func (s *UserServer) CreateUser(ctx context.Context, req *backendv1.CreateUserRequest) (*backendv1.CreateUserResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "CreateUser", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.CreateUserResponse, error) {
			u, err := s.b.CreateUser(ctx, sc, req.GetEmail(), req.GetDisplayName(), req.GetPassword(), req.GetRole())
			if err != nil {
				return nil, err
			}
			return &backendv1.CreateUserResponse{User: userToProto(u)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *UserServer) GetUser(ctx context.Context, req *backendv1.GetUserRequest) (*backendv1.GetUserResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	u, err := s.b.GetUser(ctx, sc, req.GetUserId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.GetUserResponse{User: userToProto(u)}, nil
}

func (s *UserServer) ListUsers(ctx context.Context, req *backendv1.ListUsersRequest) (*backendv1.ListUsersResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	us, next, err := s.b.ListUsers(ctx, sc, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListUsersResponse{NextPageToken: next}
	for _, u := range us {
		out.Users = append(out.Users, userToProto(u))
	}
	return out, nil
}

func (s *UserServer) UpdateUser(ctx context.Context, req *backendv1.UpdateUserRequest) (*backendv1.UpdateUserResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "UpdateUser", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.UpdateUserResponse, error) {
			u, err := s.b.UpdateUser(ctx, sc, req.GetUserId(), UserChange{
				DisplayName: req.DisplayName, Role: req.GetRole(), Password: req.Password,
			})
			if err != nil {
				return nil, err
			}
			return &backendv1.UpdateUserResponse{User: userToProto(u)}, nil
		}, nil)
	return resp, toStatus(err)
}

func (s *UserServer) DeleteUser(ctx context.Context, req *backendv1.DeleteUserRequest) (*backendv1.DeleteUserResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := mutate(ctx, s.b.db, sc.key(), "DeleteUser", req.GetRequestId(), req,
		func(ctx context.Context) (*backendv1.DeleteUserResponse, error) {
			return &backendv1.DeleteUserResponse{}, s.b.DeleteUser(ctx, sc, req.GetUserId())
		}, nil)
	return resp, toStatus(err)
}
