package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/pubsub"
	"github.com/vigilhq/vigil/platform/rpc"
)

// NotificationsPath is the WebSocket endpoint of live notifications: the browser
// counterpart of EventService.StreamNotifications, with the same messages (protojson
// StreamNotificationsResponse, one per text frame) and the same filters as query
// parameters (kinds, camera_ids, group_ids; repeated or comma-separated). Browsers
// cannot set headers on a WebSocket, so the credential may also come as ?access_token=.
const NotificationsPath = "/v1/notifications:stream"

// NotifyChannel is the pub/sub channel the event service publishes a workspace's
// notifications on (binary eventservicev1.Notification), per the event.proto contract.
func NotifyChannel(workspaceID string) string { return "vigil.notify." + workspaceID }

const (
	// recheckEvery is how often a socket's credential is checked again, so a revoked
	// session or key stops receiving within this time.
	recheckEvery = time.Minute
	// pingEvery keeps idle sockets (and the proxies between) alive and finds dead peers.
	pingEvery = 30 * time.Second
	// writeTimeout drops a client too slow to take one message.
	writeTimeout = 10 * time.Second
)

// notifications serves NotificationsPath.
type notifications struct {
	auth    backendv1.AuthServiceClient
	ps      pubsub.PubSub
	log     *slog.Logger
	origins []string
	// closing ends every socket when the gateway stops (hijacked connections are not
	// drained by http.Server.Shutdown).
	closing <-chan struct{}
	marshal protojson.MarshalOptions
}

func newNotifications(conn *grpc.ClientConn, ps pubsub.PubSub, l *slog.Logger, origins []string, closing <-chan struct{}) *notifications {
	return &notifications{
		auth: backendv1.NewAuthServiceClient(conn), ps: ps, log: l, origins: origins, closing: closing,
		marshal: protojson.MarshalOptions{EmitUnpopulated: true},
	}
}

// filter is a subscription's StreamNotificationsRequest.
type filter struct {
	kinds   []eventservicev1.NotificationKind
	cameras []string
	groups  []string
}

func parseFilter(r *http.Request) (filter, error) {
	q := r.URL.Query()
	list := func(key string) []string {
		var out []string
		for _, v := range q[key] {
			for p := range strings.SplitSeq(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
		}
		return out
	}
	f := filter{cameras: list("camera_ids"), groups: list("group_ids")}
	for _, k := range list("kinds") {
		name := strings.ToUpper(k)
		if !strings.HasPrefix(name, "NOTIFICATION_KIND_") {
			name = "NOTIFICATION_KIND_" + name
		}
		v, ok := eventservicev1.NotificationKind_value[name]
		if !ok || v == 0 {
			return filter{}, status.Errorf(codes.InvalidArgument, "kinds: unknown kind %q (identification, non_identification, activity)", k)
		}
		f.kinds = append(f.kinds, eventservicev1.NotificationKind(v))
	}
	return f, nil
}

// match reports whether n passes the filter.
func (f filter) match(n *eventservicev1.Notification) bool {
	var kind eventservicev1.NotificationKind
	var camera, group string
	switch k := n.GetKind().(type) {
	case *eventservicev1.Notification_Identification:
		kind = eventservicev1.NotificationKind_NOTIFICATION_KIND_IDENTIFICATION
		camera = k.Identification.GetEvent().GetCameraId()
		group = k.Identification.GetEvent().GetIdentification().GetGroupId()
	case *eventservicev1.Notification_NonIdentification:
		kind = eventservicev1.NotificationKind_NOTIFICATION_KIND_NON_IDENTIFICATION
		camera = k.NonIdentification.GetEvent().GetCameraId()
	case *eventservicev1.Notification_Activity:
		kind = eventservicev1.NotificationKind_NOTIFICATION_KIND_ACTIVITY
		camera = k.Activity.GetActivity().GetCameraId()
	}
	if len(f.kinds) > 0 && !slices.Contains(f.kinds, kind) {
		return false
	}
	if len(f.cameras) > 0 && !slices.Contains(f.cameras, camera) {
		return false
	}
	// The group filter narrows identifications only, as in StreamNotificationsRequest.
	if len(f.groups) > 0 && kind == eventservicev1.NotificationKind_NOTIFICATION_KIND_IDENTIFICATION && !slices.Contains(f.groups, group) {
		return false
	}
	return true
}

// credential is the bearer token of the request: the Authorization header, the
// x-api-key header, or the access_token query parameter.
func credential(r *http.Request) string {
	if v := r.Header.Get("Authorization"); len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	if v := r.Header.Get(apiKeyHeader); v != "" {
		return strings.TrimSpace(v)
	}
	return r.URL.Query().Get("access_token")
}

// whoAmI asks the backend who the credential belongs to, and requires a workspace
// principal (StreamNotifications is a workspace method for viewers and up).
func (n *notifications) whoAmI(ctx context.Context, token string) (*backendv1.WhoAmIResponse, error) {
	if token == "" {
		return nil, status.Error(codes.Unauthenticated, "credentials required: authorization: Bearer <token>, x-api-key or ?access_token=")
	}
	ctx = metadata.AppendToOutgoingContext(ctx, rpc.MetadataAuthorization, "Bearer "+token)
	if id := log.RequestID(ctx); id != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, log.RequestIDHeader, id)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	who, err := n.auth.WhoAmI(ctx, &backendv1.WhoAmIRequest{})
	if err != nil {
		return nil, err
	}
	if who.GetKind() != commonv1.Access_KIND_WORKSPACE || who.GetWorkspaceId() == "" {
		return nil, status.Error(codes.PermissionDenied, "live notifications need a workspace credential (a user session or an API key)")
	}
	return who, nil
}

func (n *notifications) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := parseFilter(r)
	if err != nil {
		writeStatus(w, err)
		return
	}
	token := credential(r)
	who, err := n.whoAmI(ctx, token)
	if err != nil {
		writeStatus(w, err)
		return
	}
	// Subscribe before the upgrade: nothing published after the client sees the
	// handshake succeed is missed.
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	msgs, err := n.ps.Subscribe(subCtx, NotifyChannel(who.GetWorkspaceId()))
	if err != nil {
		n.log.ErrorContext(ctx, "notifications: subscribe failed", log.Err(err))
		writeStatus(w, status.Error(codes.Unavailable, "notifications are unavailable"))
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: n.origins})
	if err != nil {
		return // Accept answered the client
	}
	defer c.CloseNow()
	n.log.InfoContext(ctx, "notifications: socket open", "workspace_id", who.GetWorkspaceId(), "subject_id", who.GetSubjectId())
	reason := n.pump(subCtx, c, msgs, f, token, who.GetWorkspaceId())
	n.log.InfoContext(ctx, "notifications: socket closed", "workspace_id", who.GetWorkspaceId(), "reason", reason.msg)
	_ = c.Close(reason.code, reason.msg)
}

type closeReason struct {
	code websocket.StatusCode
	msg  string
}

// pump sends matching notifications until the client goes, the credential stops being
// valid, a write fails, or the gateway stops.
func (n *notifications) pump(ctx context.Context, c *websocket.Conn, msgs <-chan []byte, f filter, token, workspace string) closeReason {
	// Clients send nothing; CloseRead handles control frames and ends ctx when they close.
	ctx = c.CloseRead(ctx)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return closeReason{websocket.StatusNormalClosure, "client closed"}
		case <-n.closing:
			return closeReason{websocket.StatusGoingAway, "server shutting down"}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return closeReason{websocket.StatusGoingAway, "ping failed"}
			}
		case <-recheck.C:
			who, err := n.whoAmI(ctx, token)
			if err != nil || who.GetWorkspaceId() != workspace {
				return closeReason{websocket.StatusPolicyViolation, "credential no longer valid"}
			}
		case raw, ok := <-msgs:
			if !ok {
				return closeReason{websocket.StatusTryAgainLater, "notification feed ended"}
			}
			var note eventservicev1.Notification
			if err := proto.Unmarshal(raw, &note); err != nil {
				n.log.Warn("notifications: undecodable message dropped", "workspace_id", workspace, log.Err(err))
				continue
			}
			if note.GetWorkspaceId() != workspace || !f.match(&note) {
				continue
			}
			data, err := n.marshal.Marshal(&eventservicev1.StreamNotificationsResponse{Notification: &note})
			if err != nil {
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err = c.Write(wctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				return closeReason{websocket.StatusGoingAway, "write failed: " + shorten(err.Error())}
			}
		}
	}
}

func shorten(s string) string {
	if len(s) > 60 { // a close reason must fit a control frame
		return s[:60]
	}
	return s
}

// writeStatus answers a refused upgrade with the gateway's usual error body.
func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	code := runtime.HTTPStatusFromCode(st.Code())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, `{"code":%d,"message":%q,"details":[]}`, st.Code(), st.Message())
}
