package licensing_test

import (
	"context"
	"fmt"
	"github.com/vigilhq/vigil/platform/licensecheck"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	"github.com/vigilhq/vigil/internal/testkit/grpctest"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/db"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/platform/rpc"
	"github.com/vigilhq/vigil/services/licensing"
)

// allowAll admits every call as an internal caller: these tests are about licensing,
// not about access rules (the authorizer's own tests walk the access table).
type allowAll struct{}

func (allowAll) Authorize(ctx context.Context, _ string) (context.Context, error) {
	return rpc.WithPrincipal(ctx, &rpc.Principal{Kind: commonv1.Access_KIND_INTERNAL, SubjectID: "internal"}), nil
}

// newApp builds the licensing module from a configuration file's text, on the database
// at databaseURL (migrated by the platform's pool when the app starts).
func newApp(t *testing.T, configYAML, databaseURL string, reg *prometheus.Registry) (*fx.App, *rpc.Service) {
	t.Helper()
	env := func(k string) (string, bool) {
		if k == "VIGIL_DATABASE_URL" {
			return databaseURL, true
		}
		return "", false
	}
	cfg, err := config.Parse([]byte(configYAML), env, func() []string { return nil })
	require.NoError(t, err)
	var svc rpc.Service
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		fx.Provide(func() prometheus.Registerer { return reg }),
		db.Module,
		licensing.Module,
		fx.Invoke(fx.Annotate(func(s []rpc.Service) {
			if len(s) == 1 {
				svc = s[0]
			}
		}, fx.ParamTags(rpc.GroupTag))),
	)
	return app, &svc
}

type started struct {
	conn   *grpc.ClientConn
	client licensingv1.LicensingServiceClient
	reg    *prometheus.Registry
}

// start runs the licensing module on a fresh database and the platform's gRPC server
// until the test ends.
func start(t *testing.T, configYAML string) started {
	t.Helper()
	s, _ := startOn(t, configYAML, dbtest.New(t).URL)
	return s
}

// startOn is start on a given database; stop ends the app early.
func startOn(t *testing.T, configYAML, databaseURL string) (s started, stop func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	app, svc := newApp(t, configYAML, databaseURL, reg)
	require.NoError(t, app.Err())
	require.NoError(t, app.Start(t.Context()))
	var once sync.Once
	stop = func() { once.Do(func() { require.NoError(t, app.Stop(context.Background())) }) }
	t.Cleanup(stop)
	conn := grpctest.New(t, grpctest.Options{Authorizer: allowAll{}}, *svc)
	return started{conn: conn, client: licensingv1.NewLicensingServiceClient(conn), reg: reg}, stop
}

// Usage is kept in PostgreSQL: a restarted licensing service still refuses beyond the
// limit without waiting for new reports.
func TestUsageSurvivesRestart(t *testing.T) {
	privPath, pubPath := keys(t)
	cfg := configFor(sign(t, privPath, smallSpec), pubPath)
	d := dbtest.New(t)

	first, stop := startOn(t, cfg, d.URL)
	require.NoError(t, licensecheck.NewChecker(first.conn).ReportUsage(t.Context(),
		&licensingv1.UsageReport{WorkspaceId: "ws1", Resource: licensingv1.Resource_RESOURCE_AGENTS, Count: 1}))
	stop()

	second, _ := startOn(t, cfg, d.URL)
	err := licensecheck.NewChecker(second.conn).CheckResource(t.Context(), "ws1", licensingv1.Resource_RESOURCE_AGENTS, 1)
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.ErrorContains(t, err, "max_agents reached: 1 of 1 used")
}

func configFor(licPath, pubPath string) string {
	return fmt.Sprintf("licensing:\n  license_file: %q\n  public_key_file: %q\n  watch_interval: 0s\n", licPath, pubPath)
}

const smallSpec = `
license_id: SMALL-1
licensee: Small Shop
expires: 2099-01-01T00:00:00Z
limits: {max_persons: 5, max_agents: 1, max_cameras: 2}
image_api_units: [face-fitter]
features: [activity-search]
`

func TestStartsWithValidLicense(t *testing.T) {
	privPath, pubPath := keys(t)
	s := start(t, configFor(sign(t, privPath, smallSpec), pubPath))

	health, err := healthpb.NewHealthClient(s.conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: licensing.ServiceName})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, health.GetStatus())

	resp, err := s.client.GetLicense(t.Context(), &licensingv1.GetLicenseRequest{})
	require.NoError(t, err)
	l := resp.GetLicense()
	require.Equal(t, "SMALL-1", l.GetLicenseId())
	require.Equal(t, "Small Shop", l.GetLicensee())
	require.Equal(t, licensingv1.Source_SOURCE_FILE, l.GetSource())
	require.Equal(t, licensingv1.State_STATE_VALID, l.GetState())
	require.Equal(t, int64(5), l.GetLimits().GetMaxPersons())
	require.Equal(t, []string{"face-fitter"}, l.GetImageApiUnits())
	require.Equal(t, 2099, l.GetExpireTime().AsTime().Year())
	require.NotEmpty(t, l.GetKeyId())
	require.Empty(t, l.GetLastReloadError())
}

func TestStartRefusesBadFiles(t *testing.T) {
	privPath, pubPath := keys(t)
	good := sign(t, privPath, smallSpec)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	tampered := filepath.Join(t.TempDir(), "tampered.license")
	data[20] ^= 0x01
	require.NoError(t, os.WriteFile(tampered, data, 0o644))
	expired := sign(t, privPath, "licensee: Old\nissued: 2020-01-01T00:00:00Z\nexpires: 2021-01-01T00:00:00Z\n")
	_, otherPub := keys(t)

	for name, tc := range map[string]struct {
		config string
		want   string
	}{
		"tampered":      {configFor(tampered, pubPath), "signature"},
		"expired":       {configFor(expired, pubPath), "expired"},
		"other key":     {configFor(good, otherPub), "signature"},
		"missing file":  {configFor(filepath.Join(t.TempDir(), "none"), pubPath), "no such file"},
		"bad key file":  {configFor(good, good), "public key"},
		"negative poll": {"licensing:\n  watch_interval: -1s\n", "watch_interval"},
	} {
		t.Run(name, func(t *testing.T) {
			// The license is judged when the app is built, before anything connects.
			app, _ := newApp(t, tc.config, dbtest.DefaultURL, prometheus.NewRegistry())
			err := app.Err()
			require.Error(t, err)
			require.ErrorContains(t, err, tc.want)
			t.Log(err)
		})
	}
}

func TestFreeTierWithoutLicenseFile(t *testing.T) {
	s := start(t, "")
	resp, err := s.client.GetLicense(t.Context(), &licensingv1.GetLicenseRequest{})
	require.NoError(t, err)
	require.Equal(t, licensingv1.Source_SOURCE_FREE_TIER, resp.GetLicense().GetSource())
	require.Equal(t, int64(licensing.FreeTierMaxPersons), resp.GetLicense().GetLimits().GetMaxPersons())

	c := licensecheck.NewChecker(s.conn)
	ctx := t.Context()
	require.NoError(t, c.CheckUnit(ctx, "ws1", "age-estimator"), "every unit")
	require.NoError(t, c.CheckFeature(ctx, "ws1", licensing.FeatureActivitySearch))
	err = c.CheckFeature(ctx, "ws1", licensing.FeatureANNIndex)
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.ErrorContains(t, err, "free tier")

	require.NoError(t, c.ReportUsage(ctx, &licensingv1.UsageReport{WorkspaceId: "ws1", Resource: licensingv1.Resource_RESOURCE_AGENTS, Count: 2}))
	err = c.CheckResource(ctx, "ws1", licensingv1.Resource_RESOURCE_AGENTS, 1)
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.ErrorContains(t, err, "max_agents")
	require.NoError(t, c.CheckResource(ctx, "ws1", licensingv1.Resource_RESOURCE_CAMERAS, 4))
}

func TestLimitsHit(t *testing.T) {
	privPath, pubPath := keys(t)
	s := start(t, configFor(sign(t, privPath, smallSpec), pubPath))
	c := licensecheck.NewChecker(s.conn)
	ctx := t.Context()

	// Persons are owned by the backend, which reports absolute counts per workspace.
	require.NoError(t, c.ReportUsage(ctx,
		&licensingv1.UsageReport{WorkspaceId: "ws1", Resource: licensingv1.Resource_RESOURCE_PERSONS, Count: 3},
		&licensingv1.UsageReport{WorkspaceId: "ws2", Resource: licensingv1.Resource_RESOURCE_PERSONS, Count: 1},
	))
	require.NoError(t, c.CheckResource(ctx, "ws1", licensingv1.Resource_RESOURCE_PERSONS, 1), "4 + 1 <= 5")

	err := c.CheckResource(ctx, "ws2", licensingv1.Resource_RESOURCE_PERSONS, 2)
	st, ok := status.FromError(err)
	require.True(t, ok)
	require.Equal(t, codes.ResourceExhausted, st.Code())
	require.Contains(t, st.Message(), "license limit max_persons reached: 4 of 5 used, 2 requested")
	require.Len(t, st.Details(), 1)
	info, ok := st.Details()[0].(*errdetails.ErrorInfo)
	require.True(t, ok)
	require.Equal(t, "LICENSE_LIMIT_REACHED", info.GetReason())
	require.Equal(t, "max_persons", info.GetMetadata()["limit"])

	var limitErr *licensecheck.LimitError
	require.ErrorAs(t, err, &limitErr)
	require.Equal(t, int64(5), limitErr.Limit)

	// A report replaces the workspace's previous count: after deletions there is room.
	require.NoError(t, c.ReportUsage(ctx, &licensingv1.UsageReport{WorkspaceId: "ws1", Resource: licensingv1.Resource_RESOURCE_PERSONS, Count: 0}))
	require.NoError(t, c.CheckResource(ctx, "ws2", licensingv1.Resource_RESOURCE_PERSONS, 4))

	usage, err := s.client.GetUsage(ctx, &licensingv1.GetUsageRequest{})
	require.NoError(t, err)
	require.Len(t, usage.GetUsage(), 3)
	persons := usage.GetUsage()[0]
	require.Equal(t, "max_persons", persons.GetLimitName())
	require.Equal(t, int64(5), persons.GetLimit())
	require.Equal(t, int64(1), persons.GetUsed())
	require.NotNil(t, persons.GetReportTime())
	require.Nil(t, usage.GetUsage()[1].GetReportTime(), "agents never reported")

	require.Equal(t, 5.0, gauge(t, s.reg, "vigil_license_limit", "max_persons"))
	require.Equal(t, 1.0, gauge(t, s.reg, "vigil_license_used", "max_persons"))
}

func TestUnitAndFeatureNotEnabled(t *testing.T) {
	privPath, pubPath := keys(t)
	s := start(t, configFor(sign(t, privPath, smallSpec), pubPath))
	c := licensecheck.NewChecker(s.conn)
	ctx := t.Context()

	require.NoError(t, c.CheckUnit(ctx, "ws1", "face-fitter"))
	err := c.CheckUnit(ctx, "ws1", "age-estimator")
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.ErrorContains(t, err, `"age-estimator"`)

	err = c.CheckFeature(ctx, "ws1", licensing.FeatureANNIndex)
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.ErrorContains(t, err, `"ann-index"`)
}

func TestCheckRejectsBadRequests(t *testing.T) {
	s := start(t, "")
	ctx := t.Context()
	for name, req := range map[string]*licensingv1.CheckRequest{
		"no workspace": {Subject: &licensingv1.CheckRequest_Unit{Unit: "x"}},
		"no subject":   {WorkspaceId: "ws1"},
		"no resource":  {WorkspaceId: "ws1", Subject: &licensingv1.CheckRequest_Resource{}},
		"empty unit":   {WorkspaceId: "ws1", Subject: &licensingv1.CheckRequest_Unit{}},
		"negative":     {WorkspaceId: "ws1", Subject: &licensingv1.CheckRequest_Resource{Resource: licensingv1.Resource_RESOURCE_PERSONS}, Requested: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.client.Check(ctx, req)
			require.Equal(t, codes.InvalidArgument, status.Code(err))
		})
	}
	for name, req := range map[string]*licensingv1.ReportUsageRequest{
		"empty":        {},
		"no workspace": {Reports: []*licensingv1.UsageReport{{Resource: licensingv1.Resource_RESOURCE_AGENTS, Count: 1}}},
		"no resource":  {Reports: []*licensingv1.UsageReport{{WorkspaceId: "ws1", Count: 1}}},
		"negative":     {Reports: []*licensingv1.UsageReport{{WorkspaceId: "ws1", Resource: licensingv1.Resource_RESOURCE_AGENTS, Count: -1}}},
	} {
		t.Run("report "+name, func(t *testing.T) {
			_, err := s.client.ReportUsage(ctx, req)
			require.Equal(t, codes.InvalidArgument, status.Code(err))
		})
	}
}

// overwrite replaces the license file in place, as an operator copying a new one would.
func overwrite(t *testing.T, dst, src string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o644))
}

func TestReloadKeepsOldLicenseOnBadFile(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, smallSpec)
	s := start(t, configFor(licPath, pubPath))
	ctx := t.Context()

	// A tampered replacement: refused, the old license stays in force.
	data, err := os.ReadFile(licPath)
	require.NoError(t, err)
	data[30] ^= 0x01
	require.NoError(t, os.WriteFile(licPath, data, 0o644))
	_, err = s.client.Reload(ctx, &licensingv1.ReloadRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.ErrorContains(t, err, "signature")
	got, err := s.client.GetLicense(ctx, &licensingv1.GetLicenseRequest{})
	require.NoError(t, err)
	require.Equal(t, "SMALL-1", got.GetLicense().GetLicenseId())
	require.Contains(t, got.GetLicense().GetLastReloadError(), "signature")
	require.Equal(t, 1.0, gauge(t, s.reg, "vigil_license_reload_failed", ""))

	// An expired replacement: refused too.
	overwrite(t, licPath, sign(t, privPath, "licensee: Old\nissued: 2020-01-01T00:00:00Z\nexpires: 2021-01-01T00:00:00Z\n"))
	_, err = s.client.Reload(ctx, &licensingv1.ReloadRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.ErrorContains(t, err, "expired")

	// A valid replacement: in force.
	overwrite(t, licPath, sign(t, privPath, "license_id: BIG-2\nlicensee: Big\nlimits: {max_persons: 50}\n"))
	resp, err := s.client.Reload(ctx, &licensingv1.ReloadRequest{})
	require.NoError(t, err)
	require.Equal(t, "BIG-2", resp.GetLicense().GetLicenseId())
	require.Equal(t, int64(50), resp.GetLicense().GetLimits().GetMaxPersons())
	require.Empty(t, resp.GetLicense().GetLastReloadError())
}

func TestFileChangeReload(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, smallSpec)
	cfg := fmt.Sprintf("licensing:\n  license_file: %q\n  public_key_file: %q\n  watch_interval: 20ms\n", licPath, pubPath)
	s := start(t, cfg)
	ctx := t.Context()
	licenseID := func() string {
		resp, err := s.client.GetLicense(ctx, &licensingv1.GetLicenseRequest{})
		require.NoError(t, err)
		return resp.GetLicense().GetLicenseId()
	}

	overwrite(t, licPath, sign(t, privPath, "license_id: WATCHED-2\nlicensee: Small Shop\n"))
	require.Eventually(t, func() bool { return licenseID() == "WATCHED-2" }, 5*time.Second, 10*time.Millisecond,
		"a changed file is picked up")

	// A tampered change is refused by the watcher too; the license in force stays.
	data, err := os.ReadFile(licPath)
	require.NoError(t, err)
	data[25] ^= 0x01
	require.NoError(t, os.WriteFile(licPath, data, 0o644))
	require.Eventually(t, func() bool {
		resp, err := s.client.GetLicense(ctx, &licensingv1.GetLicenseRequest{})
		require.NoError(t, err)
		return resp.GetLicense().GetLastReloadError() != ""
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "WATCHED-2", licenseID())

}

func TestSIGHUPReload(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, smallSpec)
	s := start(t, configFor(licPath, pubPath)) // no file watching: only the signal reloads
	ctx := t.Context()

	overwrite(t, licPath, sign(t, privPath, "license_id: HUP-3\nlicensee: Small Shop\n"))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		resp, err := s.client.GetLicense(ctx, &licensingv1.GetLicenseRequest{})
		require.NoError(t, err)
		return resp.GetLicense().GetLicenseId() == "HUP-3"
	}, 5*time.Second, 10*time.Millisecond)
}

// The Checker trusts answers for its TTL, then asks again.
func TestCheckerCachesForTTL(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, smallSpec)
	s := start(t, configFor(licPath, pubPath))
	ctx := t.Context()
	now := time.Now()
	clock := func() time.Time { return now }
	c := licensecheck.NewChecker(s.conn, licensecheck.WithTTL(time.Minute), licensecheck.WithClock(clock))

	require.NoError(t, c.CheckFeature(ctx, "ws1", licensing.FeatureActivitySearch))
	overwrite(t, licPath, sign(t, privPath, "license_id: NOFEAT\nlicensee: Small Shop\n"))
	_, err := s.client.Reload(ctx, &licensingv1.ReloadRequest{})
	require.NoError(t, err)
	require.NoError(t, c.CheckFeature(ctx, "ws1", licensing.FeatureActivitySearch), "cached within the TTL")
	now = now.Add(2 * time.Minute)
	require.Equal(t, codes.PermissionDenied, status.Code(c.CheckFeature(ctx, "ws1", licensing.FeatureActivitySearch)),
		"asked again after the TTL")

	// Counted resources: amounts let through from the cache count against the cached
	// usage, so one process cannot overshoot a limit on a stale answer.
	overwrite(t, licPath, sign(t, privPath, "license_id: THREE\nlicensee: Small Shop\nlimits: {max_cameras: 3}\n"))
	_, err = s.client.Reload(ctx, &licensingv1.ReloadRequest{})
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, c.CheckResource(ctx, "ws1", licensingv1.Resource_RESOURCE_CAMERAS, 1))
	}
	// The owner reports what it created; the next check asks the service, which refuses.
	reporter := licensecheck.NewChecker(s.conn)
	require.NoError(t, reporter.ReportUsage(ctx, &licensingv1.UsageReport{WorkspaceId: "ws1", Resource: licensingv1.Resource_RESOURCE_CAMERAS, Count: 3}))
	require.Equal(t, codes.ResourceExhausted, status.Code(c.CheckResource(ctx, "ws1", licensingv1.Resource_RESOURCE_CAMERAS, 1)))
}

func TestCheckerFailsClosedWhenLicensingIsDown(t *testing.T) {
	// A port nothing listens on: bind one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	c := licensecheck.NewChecker(conn)
	err = c.CheckResource(t.Context(), "ws1", licensingv1.Resource_RESOURCE_PERSONS, 1)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, codes.Unavailable, status.Code(c.CheckUnit(t.Context(), "ws1", "age-estimator")))
}

func TestEveryRPCDeclaresAccess(t *testing.T) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(licensing.ServiceName)
	require.NoError(t, err)
	sd := d.(protoreflect.ServiceDescriptor)
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		access, ok := proto.GetExtension(m.Options(), commonv1.E_Access).(*commonv1.Access)
		require.True(t, ok)
		require.NotEqual(t, commonv1.Access_KIND_UNSPECIFIED, access.GetKind(), "%s", m.FullName())
	}
}

// gauge returns the value of a gathered gauge; limit selects the sample by its "limit"
// label ("" for an unlabelled gauge).
func gauge(t *testing.T, reg *prometheus.Registry, name, limit string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			label := ""
			if len(m.GetLabel()) > 0 {
				label = m.GetLabel()[0].GetValue()
			}
			if label == limit {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{limit=%q} not found", name, limit)
	return 0
}
