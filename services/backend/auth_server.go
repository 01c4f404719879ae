package backend

import (
	"context"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/rpc"
)

// AuthServer implements backendv1.AuthServiceServer.
type AuthServer struct {
	backendv1.UnimplementedAuthServiceServer
	b *Backend
}

func (s *AuthServer) Login(ctx context.Context, req *backendv1.LoginRequest) (*backendv1.LoginResponse, error) {
	sess, err := s.b.Login(ctx, req.GetEmail(), req.GetPassword(), req.GetWorkspaceId())
	s.auditLogin(ctx, req.GetEmail(), sess, toStatus(err))
	if err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.LoginResponse{
		SessionToken: sess.Token, ExpireTime: timestamppb.New(sess.ExpireTime),
		WorkspaceId: sess.WorkspaceID.String(), Role: sess.Role, UserId: sess.UserID.String(),
	}, nil
}

func (s *AuthServer) Logout(ctx context.Context, _ *backendv1.LogoutRequest) (*backendv1.LogoutResponse, error) {
	if err := s.b.Logout(ctx, bearerFromMetadata(ctx)); err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.LogoutResponse{}, nil
}

func (s *AuthServer) WhoAmI(ctx context.Context, _ *backendv1.WhoAmIRequest) (*backendv1.WhoAmIResponse, error) {
	p := rpc.PrincipalFrom(ctx)
	if p == nil {
		return nil, toStatus(ErrUnauthenticated)
	}
	resp := &backendv1.WhoAmIResponse{
		Kind: p.Kind, WorkspaceId: p.WorkspaceID, Role: p.Role, SubjectId: p.SubjectID, SubjectName: p.SubjectName,
	}
	// The principal does not carry the superuser flag; the credential does.
	if tok := bearerFromMetadata(ctx); tok != "" {
		if id, err := s.b.Authenticate(ctx, tok); err == nil {
			resp.Superuser = id.Superuser
		}
	}
	return resp, nil
}

func (s *AuthServer) Authenticate(ctx context.Context, req *backendv1.AuthenticateRequest) (*backendv1.AuthenticateResponse, error) {
	id, err := s.b.Authenticate(ctx, req.GetToken())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &backendv1.AuthenticateResponse{
		Kind: id.Kind, WorkspaceId: id.WorkspaceID.String(), Role: id.Role,
		SubjectId: id.SubjectID, SubjectName: id.SubjectName, Superuser: id.Superuser,
	}
	if !id.ExpireTime.IsZero() {
		resp.ExpireTime = timestamppb.New(id.ExpireTime)
	}
	return resp, nil
}

// bearerFromMetadata returns the credential of the call: "authorization: Bearer <t>" or
// "x-api-key: <t>".
func bearerFromMetadata(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(rpc.MetadataAuthorization) {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	if v := md.Get("x-api-key"); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// auditLogin records sign-ins, failed ones included (Login is public, so the audit
// interceptor, which follows the access table's mutating flag, does not see it).
func (s *AuthServer) auditLogin(ctx context.Context, email string, sess *Session, err error) {
	st := status.Convert(err)
	e := &AuditEntry{
		SubjectKind: int16(commonv1.Access_KIND_PUBLIC), SubjectName: truncate(email, 200),
		Method: backendv1.AuthService_Login_FullMethodName, PeerAddr: auth.PeerAddr(ctx),
		Outcome: code.Code(st.Code()).String(),
	}
	if err != nil {
		e.Message = st.Message()
	}
	if sess != nil {
		ws := sess.WorkspaceID
		e.WorkspaceID, e.SubjectKind, e.SubjectID = &ws, int16(commonv1.Access_KIND_WORKSPACE), sess.UserID.String()
		e.Target = "user/" + sess.UserID.String()
	}
	if rerr := s.b.RecordAudit(ctx, []*AuditEntry{e}); rerr != nil {
		s.b.log.ErrorContext(ctx, "login audit entry not recorded", "err", rerr)
	}
}
