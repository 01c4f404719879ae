package lb

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestMetricsPerRouteAndUpstreamOnInjectedRegistry(t *testing.T) {
	b := newBackend(t, "b", nil)
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Name: "web"})
	reg := prometheus.NewRegistry()
	srv, _ := startLBOn(t, cfg, reg)
	// A second server in the same process, on its own registry, coexists.
	other, err := New(oneRoute(PoolConfig{Upstreams: addrs(b)}, RouteConfig{Name: "web"}), testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer other.Shutdown(context.Background())

	c := newClient(t)
	for i := 0; i < 5; i++ {
		code, _ := get(t, c, "http://"+srv.Addr()+"/", nil)
		require.Equal(t, http.StatusOK, code)
	}
	// A chunked request is not the fast loop's: its connection goes to net/http.
	conn, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	byName := metricValues(t, reg)
	require.Equal(t, 6.0, byName["lb_requests_total{code=200,route=web,}"])
	require.Equal(t, 6.0, byName["lb_request_duration_seconds{route=web,}"])
	require.Equal(t, 6.0, byName["lb_upstream_attempts_total{outcome=success,pool=p,upstream="+b.addr()+",}"])
	require.Equal(t, 1.0, byName["lb_upstream_healthy{pool=p,upstream="+b.addr()+",}"])
	require.Equal(t, 0.0, byName["lb_upstream_inflight{pool=p,upstream="+b.addr()+",}"])
	// The plain GETs stayed on the lb's own HTTP/1 loop; the chunked POST was handed off.
	require.Equal(t, 5.0, byName["lb_http1_fast_requests_total{listener="+cfg.Listeners[0].Name+",}"])
	require.Equal(t, 1.0, byName["lb_http1_handoffs_total{listener="+cfg.Listeners[0].Name+",}"])
}

// metricValues gathers reg into "name{label=value,...,}" -> value (a
// histogram's: its sample count).
func metricValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
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
	return byName
}
