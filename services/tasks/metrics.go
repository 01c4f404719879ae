package tasks

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// jobsCollector reports how many jobs of each kind are in each River state when
// scraped: queue depth, running work, and the dead letter to alert on.
type jobsCollector struct {
	pool *pgxpool.Pool
	desc *prometheus.Desc
	log  *slog.Logger
}

func newJobsCollector(pool *pgxpool.Pool, log *slog.Logger) *jobsCollector {
	return &jobsCollector{pool: pool, log: log, desc: prometheus.NewDesc("vigil_tasks_jobs",
		"Jobs in the queue by kind and River state (discarded = dead letter).", []string{"kind", "state"}, nil)}
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, err := c.pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job GROUP BY 1, 2`)
	if err != nil {
		c.log.Warn("count jobs for metrics", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var kind, state string
		var n int64
		if err := rows.Scan(&kind, &state, &n); err != nil {
			c.log.Warn("count jobs for metrics", "err", err)
			return
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), kind, state)
	}
}
