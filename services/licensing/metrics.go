package licensing

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the license state at scrape time, so the numbers are never stale:
//
//	vigil_license_limit{limit}               the limit in force (0 = unlimited)
//	vigil_license_used{limit}                usage reported against it
//	vigil_license_expiry_timestamp_seconds   expiry of the license (absent when perpetual)
//	vigil_license_reload_failed              1 while the last reload was refused
type collector struct {
	e       *Enforcer
	limit   *prometheus.Desc
	used    *prometheus.Desc
	expiry  *prometheus.Desc
	failing *prometheus.Desc
}

func newCollector(e *Enforcer) *collector {
	return &collector{
		e:       e,
		limit:   prometheus.NewDesc("vigil_license_limit", "Counted limit of the license in force (0 = unlimited).", []string{"limit"}, nil),
		used:    prometheus.NewDesc("vigil_license_used", "Usage reported against the limit, all workspaces.", []string{"limit"}, nil),
		expiry:  prometheus.NewDesc("vigil_license_expiry_timestamp_seconds", "Expiry of the license in force (Unix time).", nil, nil),
		failing: prometheus.NewDesc("vigil_license_reload_failed", "1 while the last license reload was refused.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.limit
	ch <- c.used
	ch <- c.expiry
	ch <- c.failing
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if usage, err := c.e.Usage(ctx); err == nil {
		for _, u := range usage {
			ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(u.Limit), u.LimitName)
			ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(u.Used), u.LimitName)
		}
	} else {
		// A scrape while the database is down shows no usage rather than wrong usage.
		c.e.log.Warn("license usage for metrics", "err", err.Error())
	}
	s := c.e.Snapshot()
	if s.License.Expires != nil {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(s.License.Expires.Unix()))
	}
	failing := 0.0
	if s.LastReloadError != "" {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, failing)
}
