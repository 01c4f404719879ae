package backend_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// TestLicenseLimits runs on the free tier (no license file): 2 agents, 4 cameras.
func TestLicenseLimits(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	var agentIDs []string
	for i := range 2 {
		resp, err := e.agents().CreateAgent(a, &backendv1.CreateAgentRequest{Name: fmt.Sprintf("agent-%d", i)})
		require.NoError(t, err)
		require.NotEmpty(t, resp.GetToken())
		agentIDs = append(agentIDs, resp.GetAgent().GetId())
	}
	_, err := e.agents().CreateAgent(a, &backendv1.CreateAgentRequest{Name: "agent-3"})
	require.Equal(t, codes.ResourceExhausted, code(err))
	require.Contains(t, status.Convert(err).Message(), "max_agents")
	require.Equal(t, 2, e.count("agents"), "nothing stored beyond the limit")

	for i := range 4 {
		_, err := e.agents().CreateCamera(a, &backendv1.CreateCameraRequest{Camera: &backendv1.Camera{AgentId: agentIDs[i%2], Name: fmt.Sprintf("cam-%d", i)}})
		require.NoError(t, err)
	}
	_, err = e.agents().CreateCamera(a, &backendv1.CreateCameraRequest{Camera: &backendv1.Camera{AgentId: agentIDs[0], Name: "cam-5"}})
	require.Equal(t, codes.ResourceExhausted, code(err))
	require.Contains(t, status.Convert(err).Message(), "max_cameras")

	// Usage is reported to licensing, counted across workspaces; deleting frees the slot.
	usage, err := licensingv1.NewLicensingServiceClient(e.conn).GetUsage(as(e.internal), &licensingv1.GetUsageRequest{})
	require.NoError(t, err)
	used := map[string]int64{}
	for _, u := range usage.GetUsage() {
		used[u.GetLimitName()] = u.GetUsed()
	}
	require.Equal(t, int64(2), used["max_agents"])
	require.Equal(t, int64(4), used["max_cameras"])
	_, err = e.agents().DeleteAgent(a, &backendv1.DeleteAgentRequest{AgentId: agentIDs[1]})
	require.NoError(t, err)
	_, err = e.agents().CreateAgent(a, &backendv1.CreateAgentRequest{Name: "agent-3"})
	require.NoError(t, err)
}

func TestAgentsAndCameras(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	created, err := e.agents().CreateAgent(a, &backendv1.CreateAgentRequest{Name: "lobby"})
	require.NoError(t, err)
	agent, token := created.GetAgent(), created.GetToken()
	require.Equal(t, backendv1.Agent_STATUS_NEW, agent.GetStatus())

	// The agent token authenticates as the agent: not a workspace user.
	who, err := e.authz.Authorize(incomingBearer(token), "/vigil.agentsync.v1.AgentSyncService/Connect")
	require.NoError(t, err)
	_ = who
	_, err = e.persons().ListPersons(as(token), &backendv1.ListPersonsRequest{})
	require.Equal(t, codes.PermissionDenied, code(err))

	cam, err := e.agents().CreateCamera(a, &backendv1.CreateCameraRequest{Camera: &backendv1.Camera{AgentId: agent.GetId(), Name: "door",
		Settings: &backendv1.CameraSettings{MinFaceSize: 40, RegionOfInterest: &commonv1.Box{X1: 0.1, Y1: 0.1, X2: 0.9, Y2: 0.9}}}})
	require.NoError(t, err)
	require.InDelta(t, 0.9, cam.GetCamera().GetSettings().GetRegionOfInterest().GetX2(), 1e-6)

	hb, err := e.agents().RecordAgentHeartbeat(e.internalIn(e.workspace), &backendv1.RecordAgentHeartbeatRequest{
		AgentId: agent.GetId(), Status: backendv1.Agent_STATUS_ONLINE, Version: "1.2.3", SyncCursor: 42,
		CameraStatus: map[string]backendv1.Camera_Status{cam.GetCamera().GetId(): backendv1.Camera_STATUS_ACTIVE}})
	require.NoError(t, err)
	require.Equal(t, backendv1.Agent_STATUS_ONLINE, hb.GetAgent().GetStatus())
	require.Equal(t, int64(42), hb.GetAgent().GetSyncCursor())
	hb, err = e.agents().RecordAgentHeartbeat(e.internalIn(e.workspace), &backendv1.RecordAgentHeartbeatRequest{
		AgentId: agent.GetId(), Status: backendv1.Agent_STATUS_ONLINE, SyncCursor: 7})
	require.NoError(t, err)
	require.Equal(t, int64(42), hb.GetAgent().GetSyncCursor(), "a cursor never goes back")
	require.Equal(t, "1.2.3", hb.GetAgent().GetVersion())
	got, err := e.agents().GetCamera(a, &backendv1.GetCameraRequest{CameraId: cam.GetCamera().GetId()})
	require.NoError(t, err)
	require.Equal(t, backendv1.Camera_STATUS_ACTIVE, got.GetCamera().GetStatus())

	rotated, err := e.agents().RotateAgentToken(a, &backendv1.RotateAgentTokenRequest{AgentId: agent.GetId()})
	require.NoError(t, err)
	_, err = e.authz.Authorize(incomingBearer(token), "/vigil.agentsync.v1.AgentSyncService/Connect")
	require.Equal(t, codes.Unauthenticated, code(err), "the old token stops at once")
	_, err = e.authz.Authorize(incomingBearer(rotated.GetToken()), "/vigil.agentsync.v1.AgentSyncService/Connect")
	require.NoError(t, err)

	_, err = e.agents().DeleteAgent(a, &backendv1.DeleteAgentRequest{AgentId: agent.GetId()})
	require.NoError(t, err)
	_, err = e.agents().GetCamera(a, &backendv1.GetCameraRequest{CameraId: cam.GetCamera().GetId()})
	require.Equal(t, codes.NotFound, code(err), "cameras go with their agent")
	_, err = e.authz.Authorize(incomingBearer(rotated.GetToken()), "/vigil.agentsync.v1.AgentSyncService/Connect")
	require.Equal(t, codes.Unauthenticated, code(err))
}

func TestEventQuery(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	ctx := context.Background()
	camA, camB := "0190a000-0000-7000-8000-00000000000a", "0190a000-0000-7000-8000-00000000000b"
	person := "0190a000-0000-7000-8000-0000000000aa"
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// As event-service writes them: 30 events, one a minute, alternating cameras.
	for i := range 30 {
		cam := camA
		if i%2 == 1 {
			cam = camB
		}
		var pid any
		typ := 2
		if i%3 == 0 {
			pid, typ = person, 1
		}
		_, err := e.db.Pool.Exec(ctx, `INSERT INTO events (id, workspace_id, type, event_time, camera_id, person_id, age, gender, mask)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)`, fmt.Sprintf("ev-%02d", i), e.workspace, typ, base.Add(time.Duration(i)*time.Minute),
			cam, pid, float32(18+i), i%5 == 0)
		require.NoError(t, err)
	}
	all := func(req *backendv1.ListEventsRequest) []string {
		var ids []string
		for {
			resp, err := e.events().ListEvents(a, req)
			require.NoError(t, err)
			for _, ev := range resp.GetEvents() {
				ids = append(ids, ev.GetId())
			}
			if resp.GetNextPageToken() == "" {
				return ids
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	ids := all(&backendv1.ListEventsRequest{PageSize: 7})
	require.Len(t, ids, 30)
	require.Equal(t, "ev-29", ids[0], "newest first")

	require.Len(t, all(&backendv1.ListEventsRequest{CameraIds: []string{camA}}), 15)
	require.Len(t, all(&backendv1.ListEventsRequest{PersonId: person}), 10)
	require.Len(t, all(&backendv1.ListEventsRequest{Type: backendv1.EventType_EVENT_TYPE_NON_IDENTIFICATION}), 20)
	require.Len(t, all(&backendv1.ListEventsRequest{TimeRange: &commonv1.TimeRange{
		StartTime: timestamppb.New(base.Add(10 * time.Minute)), EndTime: timestamppb.New(base.Add(20 * time.Minute))}}), 10)
	require.Len(t, all(&backendv1.ListEventsRequest{MinAge: 20, MaxAge: 29}), 10)
	masked := true
	require.Len(t, all(&backendv1.ListEventsRequest{Mask: &masked, CameraIds: []string{camA}}), 3)

	// A new event while paging does not shift the later pages.
	first, err := e.events().ListEvents(a, &backendv1.ListEventsRequest{PageSize: 10})
	require.NoError(t, err)
	_, err = e.db.Pool.Exec(ctx, `INSERT INTO events (id, workspace_id, type, event_time) VALUES ('ev-new', $1, 2, $2)`, e.workspace, base.Add(time.Hour))
	require.NoError(t, err)
	second, err := e.events().ListEvents(a, &backendv1.ListEventsRequest{PageSize: 10, PageToken: first.GetNextPageToken()})
	require.NoError(t, err)
	require.Equal(t, "ev-19", second.GetEvents()[0].GetId())

	ev, err := e.events().GetEvent(a, &backendv1.GetEventRequest{EventId: "ev-03"})
	require.NoError(t, err)
	require.Equal(t, person, ev.GetEvent().GetPersonId())
	require.InDelta(t, 21, ev.GetEvent().GetAttributes().GetAge(), 1e-6)
	_, err = e.events().ListEvents(a, &backendv1.ListEventsRequest{PageToken: "garbage"})
	require.Equal(t, codes.InvalidArgument, code(err))
}

func TestWebhooks(t *testing.T) {
	e := newEnv(t)
	a := e.admin()
	g, err := e.groups().CreateGroup(a, &backendv1.CreateGroupRequest{Group: &backendv1.Group{Name: "vip", Notify: true}})
	require.NoError(t, err)
	created, err := e.webhooks().CreateWebhook(a, &backendv1.CreateWebhookRequest{Webhook: &backendv1.Webhook{
		Url: "https://hooks.example.com/vigil", Enabled: true, GroupIds: []string{g.GetGroup().GetId()},
		EventTypes: []backendv1.EventType{backendv1.EventType_EVENT_TYPE_IDENTIFICATION}}})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(created.GetSecret()), 16, "generated and shown once")
	require.Empty(t, created.GetWebhook().GetSecret())
	hook := created.GetWebhook()
	got, err := e.webhooks().GetWebhook(a, &backendv1.GetWebhookRequest{WebhookId: hook.GetId()})
	require.NoError(t, err)
	require.Empty(t, got.GetWebhook().GetSecret(), "never read back")

	internal := e.internalIn(e.workspace)
	match, err := e.webhooks().MatchWebhooks(internal, &backendv1.MatchWebhooksRequest{
		EventType: backendv1.EventType_EVENT_TYPE_IDENTIFICATION, GroupId: g.GetGroup().GetId()})
	require.NoError(t, err)
	require.Len(t, match.GetWebhooks(), 1)
	require.Equal(t, created.GetSecret(), match.GetWebhooks()[0].GetSecret(), "the delivery worker gets the secret")
	none, err := e.webhooks().MatchWebhooks(internal, &backendv1.MatchWebhooksRequest{EventType: backendv1.EventType_EVENT_TYPE_NON_IDENTIFICATION})
	require.NoError(t, err)
	require.Empty(t, none.GetWebhooks())
	// Workspace users cannot fetch secrets through the internal method.
	_, err = e.webhooks().MatchWebhooks(a, &backendv1.MatchWebhooksRequest{})
	require.Equal(t, codes.PermissionDenied, code(err))

	for i, sc := range []int32{500, 200} {
		_, err := e.webhooks().RecordWebhookDelivery(internal, &backendv1.RecordWebhookDeliveryRequest{Delivery: &backendv1.WebhookDelivery{
			WebhookId: hook.GetId(), EventIds: []string{"ev-1"}, Attempt: int32(i + 1), StatusCode: sc, Succeeded: sc == 200}})
		require.NoError(t, err)
	}
	log, err := e.webhooks().ListWebhookDeliveries(a, &backendv1.ListWebhookDeliveriesRequest{WebhookId: hook.GetId()})
	require.NoError(t, err)
	require.Len(t, log.GetDeliveries(), 2)
	require.True(t, log.GetDeliveries()[0].GetSucceeded(), "newest first")
	require.Equal(t, int32(500), log.GetDeliveries()[1].GetStatusCode())

	upd, err := e.webhooks().UpdateWebhook(a, &backendv1.UpdateWebhookRequest{Webhook: &backendv1.Webhook{Id: hook.GetId(), Url: "https://other.example.com/x", Enabled: false}})
	require.NoError(t, err)
	require.False(t, upd.GetWebhook().GetEnabled())
	match, err = e.webhooks().MatchWebhooks(internal, &backendv1.MatchWebhooksRequest{EventType: backendv1.EventType_EVENT_TYPE_IDENTIFICATION, GroupId: g.GetGroup().GetId()})
	require.NoError(t, err)
	require.Empty(t, match.GetWebhooks(), "disabled")

	_, err = e.webhooks().DeleteWebhook(a, &backendv1.DeleteWebhookRequest{WebhookId: hook.GetId()})
	require.NoError(t, err)
	require.Zero(t, e.count("webhook_deliveries"))
}

// TestUsageReportedAtStart: a restarted licensing service learns the counts the backend
// holds, so limits hold from the first request.
func TestUsageReportedAtStart(t *testing.T) {
	e := newEnv(t)
	_, err := e.agents().CreateAgent(e.admin(), &backendv1.CreateAgentRequest{Name: "a1"})
	require.NoError(t, err)
	_, err = e.agents().CreateAgent(e.admin(), &backendv1.CreateAgentRequest{Name: "a2"})
	require.NoError(t, err)
	e.start() // a new process: its licensing service starts with no reports
	require.Eventually(t, func() bool {
		_, err := e.agents().CreateAgent(e.admin(), &backendv1.CreateAgentRequest{Name: "a3"})
		return code(err) == codes.ResourceExhausted
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, 2, e.count("agents"))
}
