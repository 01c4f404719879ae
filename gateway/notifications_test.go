package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigilhq/vigil/gateway"
	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/rpc"
)

// tokens is the test processes' authorizer: a fixed set of credentials.
var tokens = tokenAuthorizer{
	"tok":  {Kind: commonv1.Access_KIND_WORKSPACE, WorkspaceID: "ws-1", SubjectID: "tester"},
	"tok2": {Kind: commonv1.Access_KIND_WORKSPACE, WorkspaceID: "ws-2", SubjectID: "other"},
	"sys":  {Kind: commonv1.Access_KIND_INTERNAL, SubjectID: "internal"},
}

type tokenAuthorizer map[string]*rpc.Principal

func (a tokenAuthorizer) Authorize(ctx context.Context, _ string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var tok string
	if v := md.Get("authorization"); len(v) > 0 {
		tok = strings.TrimPrefix(v[0], "Bearer ")
	} else if v := md.Get("x-api-key"); len(v) > 0 {
		tok = v[0]
	}
	p, ok := a[tok]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown credential")
	}
	return rpc.WithPrincipal(ctx, p), nil
}

// whoAmI answers AuthService.WhoAmI from the principal, as the backend does; the rest of
// the backend is not needed here.
type whoAmI struct {
	backendv1.UnimplementedAuthServiceServer
}

func (whoAmI) WhoAmI(ctx context.Context, _ *backendv1.WhoAmIRequest) (*backendv1.WhoAmIResponse, error) {
	p := rpc.PrincipalFrom(ctx)
	return &backendv1.WhoAmIResponse{Kind: p.Kind, WorkspaceId: p.WorkspaceID, SubjectId: p.SubjectID}, nil
}

func whoAmIService() rpc.Service {
	return rpc.Service{
		Name:     backendv1.AuthService_ServiceDesc.ServiceName,
		Register: func(r grpc.ServiceRegistrar) { backendv1.RegisterAuthServiceServer(r, whoAmI{}) },
	}
}

func identification(workspace, id, camera, group string) *eventservicev1.Notification {
	return &eventservicev1.Notification{WorkspaceId: workspace, NotificationId: id, Kind: &eventservicev1.Notification_Identification{
		Identification: &eventservicev1.IdentificationNotification{Event: &eventservicev1.Event{
			EventId: id, WorkspaceId: workspace, CameraId: camera,
			Identification: &eventservicev1.Identification{GroupId: group},
		}},
	}}
}

func publish(t *testing.T, e env, workspace string, n proto.Message) {
	t.Helper()
	raw, err := proto.Marshal(n)
	require.NoError(t, err)
	require.NoError(t, e.ps.Publish(context.Background(), gateway.NotifyChannel(workspace), raw))
}

func wsURL(e env, query string) string {
	return strings.Replace(e.base, "http://", "ws://", 1) + gateway.NotificationsPath + "?" + query
}

func TestNotificationsRefusals(t *testing.T) {
	e := start(t, "")
	tests := []struct {
		name, query string
		want        int
	}{
		{"no credential", "", http.StatusUnauthorized},
		{"unknown credential", "access_token=nope", http.StatusUnauthorized},
		{"not a workspace credential", "access_token=sys", http.StatusForbidden},
		{"unknown kind", "access_token=tok&kinds=everything", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := websocket.Dial(context.Background(), wsURL(e, tt.query), nil)
			require.Error(t, err)
			require.Equal(t, tt.want, resp.StatusCode)
		})
	}
}

func TestNotificationsRelayFilteredWorkspaceMessages(t *testing.T) {
	e := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, _, err := websocket.Dial(ctx, wsURL(e, "access_token=tok&kinds=identification,non_identification&camera_ids=cam-1&group_ids=vip"), nil)
	require.NoError(t, err)
	defer c.CloseNow()

	publish(t, e, "ws-1", identification("ws-1", "first", "cam-1", "vip"))
	publish(t, e, "ws-1", identification("ws-1", "other-camera", "cam-2", "vip"))
	publish(t, e, "ws-1", identification("ws-1", "other-group", "cam-1", "staff"))
	publish(t, e, "ws-1", &eventservicev1.Notification{WorkspaceId: "ws-1", NotificationId: "activity",
		Kind: &eventservicev1.Notification_Activity{Activity: &eventservicev1.ActivityNotification{
			Activity: &eventservicev1.Activity{CameraId: "cam-1"}}}})
	publish(t, e, "ws-2", identification("ws-2", "other-workspace", "cam-1", "vip"))
	require.NoError(t, e.ps.Publish(ctx, gateway.NotifyChannel("ws-1"), []byte("not a protobuf \xff\xff")))
	publish(t, e, "ws-1", &eventservicev1.Notification{WorkspaceId: "ws-1", NotificationId: "last",
		Kind: &eventservicev1.Notification_NonIdentification{NonIdentification: &eventservicev1.NonIdentificationNotification{
			Event: &eventservicev1.Event{EventId: "last", CameraId: "cam-1"}}}})

	var got []string
	for len(got) < 2 {
		typ, data, err := c.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, websocket.MessageText, typ)
		var resp eventservicev1.StreamNotificationsResponse
		require.NoError(t, protojson.Unmarshal(data, &resp), string(data))
		got = append(got, resp.GetNotification().GetNotificationId())
	}
	require.Equal(t, []string{"first", "last"}, got, "only matching notifications of the caller's workspace, in order")

	// Stopping the gateway ends the socket with "going away".
	e.stop()
	_, _, err = c.Read(ctx)
	require.Error(t, err)
	var ce websocket.CloseError
	require.True(t, errors.As(err, &ce), "close frame expected, got %v", err)
	require.Equal(t, websocket.StatusGoingAway, ce.Code)
}
