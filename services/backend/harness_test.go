package backend_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vigilhq/vigil/gateway"
	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/services/backend"
	"github.com/vigilhq/vigil/services/licensing"
	"github.com/vigilhq/vigil/services/matcher"
)

// env is a Vigil process as `vigil serve backend licensing matcher` runs it (the real
// platform, auth, gRPC server on loopback, a fresh PostgreSQL database), with the first
// admin signed in.
type env struct {
	t        *testing.T
	conn     *grpc.ClientConn
	dbURL    string
	db       *dbtest.DB
	internal string
	out      *bytes.Buffer
	authz    *auth.Authorizer

	httpBase string
	redis    string

	adminToken string
	adminEmail string
	adminPass  string
	workspace  string
}

var passwordLine = regexp.MustCompile(`admin password: (\S+)`)

func newEnv(t *testing.T, extra ...fx.Option) *env {
	t.Helper()
	return newEnvWithRedis(t, "", extra...)
}

// newEnvWithRedis is newEnv with pub/sub and cache on the Redis at addr (so several
// processes of the test share them, as replicas do).
func newEnvWithRedis(t *testing.T, redis string, extra ...fx.Option) *env {
	t.Helper()
	d := dbtest.New(t)
	e := &env{t: t, db: d, dbURL: d.URL, out: &bytes.Buffer{}, redis: redis}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	e.internal = hex.EncodeToString(b)
	e.start(extra...)

	m := passwordLine.FindStringSubmatch(e.out.String())
	require.Len(t, m, 2, "the first start prints the admin password: %q", e.out.String())
	e.adminEmail, e.adminPass = "admin@vigil.local", m[1]
	resp, err := e.auth().Login(context.Background(), &backendv1.LoginRequest{Email: e.adminEmail, Password: e.adminPass})
	require.NoError(t, err)
	e.adminToken, e.workspace = resp.GetSessionToken(), resp.GetWorkspaceId()
	return e
}

// start runs one process on e's database; several may run (a restart, a second replica).
func (e *env) start(extra ...fx.Option) {
	t := e.t
	yaml := fmt.Sprintf("grpc_listen: 127.0.0.1:0\nhttp_listen: 127.0.0.1:0\npublic_listen: 127.0.0.1:0\ndatabase_url: %q\n"+
		"auto_migrate: true\ndata_dir: %q\nlog_level: error\nshutdown_timeout: 5s\n", e.dbURL, t.TempDir())
	if e.redis != "" {
		yaml += fmt.Sprintf("redis:\n  addr: %q\n", e.redis)
	}
	cfg, err := config.Parse([]byte(yaml), func(k string) (string, bool) {
		if k == "VIGIL_INTERNAL_TOKEN" {
			return e.internal, true
		}
		return "", false
	}, func() []string { return []string{"VIGIL_INTERNAL_TOKEN=" + e.internal} })
	require.NoError(t, err)
	backend.BootstrapOutput = e.out
	var srv *grpcserver.Server
	var gw *gateway.Gateway
	var authz *auth.Authorizer
	opts := []fx.Option{
		fx.NopLogger,
		fx.Supply(cfg),
		platform.Module,
		auth.Module,
		backend.Module,
		licensing.Module,
		matcher.Module,
	}
	opts = append(opts, extra...)
	opts = append(opts, gateway.Module, grpcserver.Serve, gateway.Serve, fx.Populate(&srv, &gw, &authz))
	app := fx.New(opts...)
	require.NoError(t, app.Err())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, app.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	})
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	e.conn, e.authz, e.httpBase = conn, authz, "http://"+gw.Addr()
}

// as returns a context carrying token as the bearer credential.
func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func (e *env) admin() context.Context { return as(e.adminToken) }

// internalIn returns a context of Vigil's own services acting in workspace ws.
func (e *env) internalIn(ws string) context.Context {
	return metadata.AppendToOutgoingContext(as(e.internal), "x-vigil-workspace-id", ws)
}

func (e *env) auth() backendv1.AuthServiceClient { return backendv1.NewAuthServiceClient(e.conn) }
func (e *env) workspaces() backendv1.WorkspaceServiceClient {
	return backendv1.NewWorkspaceServiceClient(e.conn)
}
func (e *env) users() backendv1.UserServiceClient  { return backendv1.NewUserServiceClient(e.conn) }
func (e *env) keys() backendv1.ApiKeyServiceClient { return backendv1.NewApiKeyServiceClient(e.conn) }
func (e *env) persons() backendv1.PersonServiceClient {
	return backendv1.NewPersonServiceClient(e.conn)
}
func (e *env) groups() backendv1.GroupServiceClient { return backendv1.NewGroupServiceClient(e.conn) }
func (e *env) agents() backendv1.AgentServiceClient { return backendv1.NewAgentServiceClient(e.conn) }
func (e *env) events() backendv1.EventQueryServiceClient {
	return backendv1.NewEventQueryServiceClient(e.conn)
}
func (e *env) webhooks() backendv1.WebhookServiceClient {
	return backendv1.NewWebhookServiceClient(e.conn)
}
func (e *env) audit() backendv1.AuditServiceClient { return backendv1.NewAuditServiceClient(e.conn) }

// userWithRole creates a user of role in the admin's workspace and returns its session.
func (e *env) userWithRole(role commonv1.Role) string {
	e.t.Helper()
	email := fmt.Sprintf("%s-%d@example.com", role, time.Now().UnixNano())
	_, err := e.users().CreateUser(e.admin(), &backendv1.CreateUserRequest{Email: email, Password: "correct horse battery", Role: role})
	require.NoError(e.t, err)
	resp, err := e.auth().Login(context.Background(), &backendv1.LoginRequest{Email: email, Password: "correct horse battery"})
	require.NoError(e.t, err)
	return resp.GetSessionToken()
}

// secondWorkspace creates another tenant with its own admin and returns the admin's
// session and the workspace id.
func (e *env) secondWorkspace(name string) (token, ws string) {
	e.t.Helper()
	email := fmt.Sprintf("admin-%d@%s.example", time.Now().UnixNano(), name)
	resp, err := e.workspaces().CreateWorkspace(e.admin(), &backendv1.CreateWorkspaceRequest{Name: name, AdminEmail: email})
	require.NoError(e.t, err)
	require.NotEmpty(e.t, resp.GetAdminPassword())
	login, err := e.auth().Login(context.Background(), &backendv1.LoginRequest{Email: email, Password: resp.GetAdminPassword()})
	require.NoError(e.t, err)
	return login.GetSessionToken(), resp.GetWorkspace().GetId()
}

func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// incomingBearer is a server-side context carrying token, for calling the authorizer.
func incomingBearer(token string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
}
