package auth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what an operator alerts on: credential lookups that miss the cache or
// fail, and audit entries that could not be recorded.
type Metrics struct {
	lookups      *prometheus.CounterVec
	auditFailure prometheus.Counter
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_auth_credential_lookups_total",
			Help: "Credential resolutions by result: cache_hit, backend (resolved by the backend), rejected, error.",
		}, []string{"result"}),
		auditFailure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_audit_record_failures_total",
			Help: "Audit entries that could not be recorded (the call itself went through).",
		}),
	}
	for _, c := range []prometheus.Collector{m.lookups, m.auditFailure} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) lookup(result string) {
	if m != nil {
		m.lookups.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) auditFailed() {
	if m != nil {
		m.auditFailure.Inc()
	}
}
