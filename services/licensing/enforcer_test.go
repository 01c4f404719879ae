package licensing_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	"github.com/vigilhq/vigil/platform/dbtest"
	"github.com/vigilhq/vigil/services/licensing"
)

// newStore returns a Store on a fresh, migrated database.
func newStore(t *testing.T) *licensing.Store {
	t.Helper()
	d := dbtest.New(t)
	require.NoError(t, licensing.Migrate(context.Background(), d.Pool))
	return licensing.NewStore(d.Pool)
}

// A license that expires while the process runs is not refused (it verified at start):
// its state turns EXPIRED and the free tier's limits apply, saying why.
func TestExpiryWhileRunningFallsBackToFreeTier(t *testing.T) {
	privPath, pubPath := keys(t)
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	licPath := sign(t, privPath, "license_id: SOON\nlicensee: Soon Co\nexpires: "+expires.Format(time.RFC3339)+
		"\nlimits: {max_persons: 100000}\nfeatures: [\"*\"]\n")

	now := time.Now()
	ctx := t.Context()
	store := newStore(t)
	e, err := licensing.NewEnforcer(licensing.Config{LicenseFile: licPath, PublicKeyFile: pubPath},
		slog.New(slog.DiscardHandler), func() time.Time { return now }, store)
	require.NoError(t, err)
	require.NoError(t, e.ReportUsage(ctx, []licensing.UsageReport{{WorkspaceID: "ws1", Resource: licensingv1.Resource_RESOURCE_PERSONS, Count: 5000}}))

	v, err := e.CheckResource(ctx, licensingv1.Resource_RESOURCE_PERSONS, 1)
	require.NoError(t, err)
	require.True(t, v.Allowed)
	v, err = e.CheckFeature(licensing.FeatureANNIndex)
	require.NoError(t, err)
	require.True(t, v.Allowed)
	require.Equal(t, licensingv1.State_STATE_VALID, e.Snapshot().State)

	now = expires.Add(time.Second)
	require.Equal(t, licensingv1.State_STATE_EXPIRED, e.Snapshot().State)
	require.Equal(t, "SOON", e.Snapshot().License.LicenseID, "the expired license is still shown")
	v, err = e.CheckResource(ctx, licensingv1.Resource_RESOURCE_PERSONS, 1)
	require.NoError(t, err)
	require.False(t, v.Allowed)
	require.Equal(t, licensingv1.Denial_DENIAL_LIMIT_REACHED, v.Denial)
	require.Equal(t, int64(licensing.FreeTierMaxPersons), v.Limit)
	require.Contains(t, v.Message, "max_persons")
	require.Contains(t, v.Message, "expired")
	v, err = e.CheckFeature(licensing.FeatureANNIndex)
	require.NoError(t, err)
	require.False(t, v.Allowed)

	// Restarting with the expired file is refused.
	_, err = licensing.NewEnforcer(licensing.Config{LicenseFile: licPath, PublicKeyFile: pubPath},
		slog.New(slog.DiscardHandler), func() time.Time { return now }, store)
	require.ErrorIs(t, err, licensing.ErrExpired)
}

func TestUnlimitedLimits(t *testing.T) {
	privPath, pubPath := keys(t)
	licPath := sign(t, privPath, "licensee: Big\nlimits: {max_persons: 0, max_agents: 3}\n")
	ctx := t.Context()
	e, err := licensing.NewEnforcer(licensing.Config{LicenseFile: licPath, PublicKeyFile: pubPath}, slog.New(slog.DiscardHandler), nil, newStore(t))
	require.NoError(t, err)
	require.NoError(t, e.ReportUsage(ctx, []licensing.UsageReport{{WorkspaceID: "ws1", Resource: licensingv1.Resource_RESOURCE_PERSONS, Count: 10_000_000}}))
	v, err := e.CheckResource(ctx, licensingv1.Resource_RESOURCE_PERSONS, 1_000_000)
	require.NoError(t, err)
	require.True(t, v.Allowed, "0 means unlimited")
	v, err = e.CheckResource(ctx, licensingv1.Resource_RESOURCE_AGENTS, 4)
	require.NoError(t, err)
	require.False(t, v.Allowed)
	require.Contains(t, v.Message, "license limit max_agents reached: 0 of 3 used, 4 requested")
}
