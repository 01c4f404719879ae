package lb

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
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

// A reload drops the series of the routes and upstreams it removed (pod
// addresses come and go), and keeps those of the ones it kept.
func TestReloadForgetsRemovedSeries(t *testing.T) {
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	reg := prometheus.NewRegistry()
	cfg := oneRoute(PoolConfig{Upstreams: addrs(b1, b2)}, RouteConfig{Name: "old"})
	srv, base := startLBOn(t, cfg, reg)
	c := newClient(t)
	for range 4 {
		code, _ := get(t, c, base+"/", nil)
		require.Equal(t, http.StatusOK, code)
	}
	series := func(sub string) (n int) {
		for k := range metricValues(t, reg) {
			if strings.Contains(k, sub) && !strings.HasPrefix(k, "lb_upstream_inflight") && !strings.HasPrefix(k, "lb_upstream_healthy") && !strings.HasPrefix(k, "lb_upstream_ejected") {
				n++
			}
		}
		return n
	}
	require.Positive(t, series("route=old,"))
	require.Positive(t, series("upstream="+b2.addr()+","))
	require.NoError(t, srv.Reload(oneRoute(PoolConfig{Upstreams: addrs(b1)}, RouteConfig{Name: "new"})))
	require.Zero(t, series("route=old,"), "the removed route's series")
	require.Zero(t, series("upstream="+b2.addr()+","), "the removed upstream's series")
	require.Positive(t, series("upstream="+b1.addr()+","), "the kept upstream's series")
}
