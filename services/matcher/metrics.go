package matcher

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the matcher's Prometheus series: index size (read from the index at
// scrape time), search latency, and shard health as seen by this replica.
type metrics struct {
	searchSeconds *prometheus.HistogramVec
	shardUp       *prometheus.GaugeVec
	shardFailures *prometheus.CounterVec
}

type indexCollector struct {
	index     *Index
	templates *prometheus.Desc
	persons   *prometheus.Desc
	memory    *prometheus.Desc
}

func (c indexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.templates
	ch <- c.persons
	ch <- c.memory
}

func (c indexCollector) Collect(ch chan<- prometheus.Metric) {
	type agg struct{ templates, persons, memory float64 }
	byModel := map[string]*agg{}
	for _, s := range c.index.Stats("") {
		a := byModel[s.ModelID]
		if a == nil {
			a = &agg{}
			byModel[s.ModelID] = a
		}
		a.templates += float64(s.Templates)
		a.persons += float64(s.Persons)
		a.memory += float64(s.MemoryBytes)
	}
	for m, a := range byModel {
		ch <- prometheus.MustNewConstMetric(c.templates, prometheus.GaugeValue, a.templates, m)
		ch <- prometheus.MustNewConstMetric(c.persons, prometheus.GaugeValue, a.persons, m)
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, a.memory, m)
	}
}

func newMetrics(reg prometheus.Registerer, index *Index) (*metrics, error) {
	m := &metrics{
		searchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_matcher_search_seconds",
			Help:    "Time to answer a Search call, by scope (cluster fan-out or local shard) and mode.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2},
		}, []string{"scope", "mode"}),
		shardUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_matcher_shard_up",
			Help: "1 when the shard answered its last call from this replica, else 0.",
		}, []string{"shard"}),
		shardFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_matcher_shard_failures_total",
			Help: "Calls to a shard that failed or ran past the shard timeout.",
		}, []string{"shard"}),
	}
	ic := indexCollector{
		index:     index,
		templates: prometheus.NewDesc("vigil_matcher_index_templates", "Templates held in memory by this replica.", []string{"model"}, nil),
		persons:   prometheus.NewDesc("vigil_matcher_index_persons", "Persons with templates held by this replica.", []string{"model"}, nil),
		memory:    prometheus.NewDesc("vigil_matcher_index_memory_bytes", "Memory of the in-memory index.", []string{"model"}, nil),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.searchSeconds, m.shardUp, m.shardFailures, ic} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observeSearch(scope, mode string, start time.Time) {
	if m != nil {
		m.searchSeconds.WithLabelValues(scope, mode).Observe(time.Since(start).Seconds())
	}
}

func (m *metrics) shardFailed(name string) {
	if m != nil {
		m.shardUp.WithLabelValues(name).Set(0)
		m.shardFailures.WithLabelValues(name).Inc()
	}
}

func (m *metrics) shardAnswered(name string) {
	if m != nil {
		m.shardUp.WithLabelValues(name).Set(1)
	}
}
