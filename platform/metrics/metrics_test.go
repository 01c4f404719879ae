package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestHandlerServesRegisteredAndRuntimeMetrics(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	// A second registry accepts the same metric name: nothing lands in a global.
	NewRegistry().MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_test_total", Help: "test"}))

	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "vigil_test_total 3")
	require.Contains(t, string(body), "go_goroutines")
	require.Contains(t, string(body), "process_cpu_seconds_total")
}
