package grpcserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics counts calls by method and code and times them by method.
type serverMetrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_grpc_server_handled_total",
			Help: "gRPC calls completed on the server, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_grpc_server_handling_seconds",
			Help:    "Time from the start of a gRPC call to its end, by method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_grpc_server_in_flight",
			Help: "gRPC calls currently being handled.",
		}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register grpc metrics: %w", err)
		}
	}
	return m, nil
}
