package imageapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/ml/vision"
)

// metrics are the service's Prometheus series, registered on the injected
// registerer (never the global one).
type metrics struct {
	latency   *prometheus.HistogramVec
	objects   *prometheus.CounterVec
	badImages prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "vigil", Subsystem: "imageapi", Name: "request_seconds",
			Help:    "Time to serve one Image API call, by RPC.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"rpc"}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "imageapi", Name: "objects_total",
			Help: "Objects returned, by class.",
		}, []string{"class"}),
		badImages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "imageapi", Name: "invalid_images_total",
			Help: "Images refused as corrupt, unsupported or too large.",
		}),
	}
	for _, c := range []prometheus.Collector{m.latency, m.objects, m.badImages} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(rpc string, start time.Time) {
	m.latency.WithLabelValues(rpc).Observe(time.Since(start).Seconds())
}

func (m *metrics) count(s *vision.Sample) {
	for _, o := range s.Objects {
		m.objects.WithLabelValues(o.Class.String()).Inc()
	}
}
