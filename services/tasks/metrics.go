package tasks

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the task queue, registered on the process's registry.
type metrics struct {
	webhookAttempts    *prometheus.CounterVec
	webhookSeconds     prometheus.Histogram
	webhookLogFailures prometheus.Counter
	webhookFanout      prometheus.Counter
	importItems        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "tasks", Name: "webhook_attempts_total",
			Help: "Webhook delivery attempts, by outcome.",
		}, []string{"success"}),
		webhookSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "vigil", Subsystem: "tasks", Name: "webhook_attempt_seconds",
			Help:    "Time of one webhook delivery attempt.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}),
		webhookLogFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "tasks", Name: "webhook_log_failures_total",
			Help: "Delivery attempts that could not be written to the backend's delivery log.",
		}),
		webhookFanout: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "tasks", Name: "webhook_deliveries_queued_total",
			Help: "Webhook deliveries queued for events.",
		}),
		importItems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vigil", Subsystem: "tasks", Name: "import_items_total",
			Help: "Persons processed by import jobs, by outcome.",
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.webhookAttempts, m.webhookSeconds, m.webhookLogFailures, m.webhookFanout, m.importItems} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
