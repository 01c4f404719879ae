// Package metrics provides the process's Prometheus registry. It is never the global
// default registry, so several Vigil processes (or test apps) coexist in one binary.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"
)

// Module provides *prometheus.Registry, also as prometheus.Registerer and
// prometheus.Gatherer.
var Module = fx.Provide(
	NewRegistry,
	func(r *prometheus.Registry) prometheus.Registerer { return r },
	func(r *prometheus.Registry) prometheus.Gatherer { return r },
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return r
}

// Handler serves g in the Prometheus text format (the /metrics endpoint).
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
