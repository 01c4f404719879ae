package lb

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestMetricsPerRouteAndUpstreamOnInjectedRegistry(t *testing.T) {
	b := newBackend(t, "b", nil)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Name: "web"})
	reg := prometheus.NewRegistry()
	srv, err := New(cfg, testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Shutdown(context.Background())
	// A second server in the same process, on its own registry, coexists.
	other, err := New(oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Name: "web"}), testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer other.Shutdown(context.Background())

	c := newClient(t)
	for i := 0; i < 5; i++ {
		code, _ := get(t, c, "http://"+srv.Addr()+"/", nil)
		require.Equal(t, http.StatusOK, code)
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			byName[f.GetName()+"{"+labels+"}"] = v
		}
	}
	require.Equal(t, 5.0, byName["lb_requests_total{code=200,route=web,}"])
	require.Equal(t, 5.0, byName["lb_request_duration_seconds{route=web,}"])
	require.Equal(t, 5.0, byName["lb_upstream_attempts_total{outcome=success,pool=p,upstream="+b.addr()+",}"])
	require.Equal(t, 1.0, byName["lb_upstream_healthy{pool=p,upstream="+b.addr()+",}"])
	require.Equal(t, 0.0, byName["lb_upstream_inflight{pool=p,upstream="+b.addr()+",}"])
}
