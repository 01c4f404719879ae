package lb

import (
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the load balancer's Prometheus series, registered once per
// Server on the injected Registerer so that several servers can live in one
// process (tests) and reloads keep counting.
type metrics struct {
	requests    *prometheus.CounterVec   // route, code
	duration    *prometheus.HistogramVec // route
	retries     *prometheus.CounterVec   // route
	rejected    *prometheus.CounterVec   // route, reason
	upRequests  *prometheus.CounterVec   // pool, upstream, outcome
	upLatency   *prometheus.HistogramVec // pool, upstream
	ejections   *prometheus.CounterVec   // pool, upstream
	reloads     *prometheus.CounterVec   // result
	stateGauges *stateCollector
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_requests_total", Help: "Requests served, by route and status code (0 when no response was sent).",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lb_request_duration_seconds", Help: "Time from request to the end of the response body, by route.", Buckets: buckets,
		}, []string{"route"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_retries_total", Help: "Retried attempts, by route.",
		}, []string{"route"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_rejected_total", Help: "Requests refused by the proxy itself, by route and reason.",
		}, []string{"route", "reason"}),
		upRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_upstream_attempts_total", Help: "Attempts sent to an upstream, by outcome (success or failure as outlier detection sees it).",
		}, []string{"pool", "upstream", "outcome"}),
		upLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lb_upstream_header_latency_seconds", Help: "Time to an upstream's response headers.", Buckets: buckets,
		}, []string{"pool", "upstream"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_upstream_ejections_total", Help: "Passive outlier ejections.",
		}, []string{"pool", "upstream"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lb_config_reloads_total", Help: "Config reloads, by result (ok or error).",
		}, []string{"result"}),
		stateGauges: &stateCollector{s: s},
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.rejected, m.upRequests, m.upLatency, m.ejections, m.reloads, m.stateGauges} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// routeMetrics are a route's series resolved once, off the hot path.
type routeMetrics struct {
	m        *metrics
	name     string
	duration prometheus.Observer
	retries  prometheus.Counter
	byCode   [600]atomic.Pointer[prometheus.Counter]
}

func (m *metrics) forRoute(name string) *routeMetrics {
	return &routeMetrics{m: m, name: name, duration: m.duration.WithLabelValues(name), retries: m.retries.WithLabelValues(name)}
}

func (rm *routeMetrics) observe(code int, d time.Duration) {
	rm.duration.Observe(d.Seconds())
	if code < 0 || code >= len(rm.byCode) {
		code = 0
	}
	c := rm.byCode[code].Load()
	if c == nil {
		cc := rm.m.requests.WithLabelValues(rm.name, strconv.Itoa(code))
		c = &cc
		rm.byCode[code].Store(c)
	}
	(*c).Inc()
}

func (rm *routeMetrics) reject(reason string) { rm.m.rejected.WithLabelValues(rm.name, reason).Inc() }

// forget drops the series of the routes and upstreams old had and cur has
// not: configs made from changing addresses (pods) would otherwise grow
// them for good. (A request of old still running may count into a
// route's series once more, which then stays until the next reload.)
func (m *metrics) forget(old, cur *state) {
	if m == nil {
		return
	}
	kept := map[string]bool{}
	for _, ro := range cur.router.routes {
		kept[ro.name] = true
	}
	for _, ro := range old.router.routes {
		if !kept[ro.name] {
			l := prometheus.Labels{"route": ro.name}
			m.requests.DeletePartialMatch(l)
			m.duration.DeletePartialMatch(l)
			m.retries.DeletePartialMatch(l)
			m.rejected.DeletePartialMatch(l)
		}
	}
	for name, p := range old.pools {
		np := cur.pools[name]
		for _, u := range p.upstreams {
			if np != nil && slices.Contains(np.upstreams, u) {
				continue // kept, with its series (Provision)
			}
			l := prometheus.Labels{"pool": name, "upstream": u.Addr}
			m.upRequests.DeletePartialMatch(l)
			m.upLatency.DeletePartialMatch(l)
			m.ejections.DeletePartialMatch(l)
		}
	}
}

type upstreamMetrics struct {
	success, failure prometheus.Counter
	ejections        prometheus.Counter
	latency          prometheus.Observer
}

func (m *metrics) forUpstream(pool, addr string) *upstreamMetrics {
	return &upstreamMetrics{
		success:   m.upRequests.WithLabelValues(pool, addr, "success"),
		failure:   m.upRequests.WithLabelValues(pool, addr, "failure"),
		ejections: m.ejections.WithLabelValues(pool, addr),
		latency:   m.upLatency.WithLabelValues(pool, addr),
	}
}

// stateCollector reports live upstream state at scrape time from the
// current config generation, so the hot path updates no gauges and removed
// upstreams disappear after a reload.
type stateCollector struct{ s *Server }

var (
	inflightDesc = prometheus.NewDesc("lb_upstream_inflight", "Requests in flight to an upstream.", []string{"pool", "upstream"}, nil)
	healthyDesc  = prometheus.NewDesc("lb_upstream_healthy", "1 when the active health check passes (or none is configured).", []string{"pool", "upstream"}, nil)
	ejectedDesc  = prometheus.NewDesc("lb_upstream_ejected", "1 while passively ejected.", []string{"pool", "upstream"}, nil)
	pendingDesc  = prometheus.NewDesc("lb_pool_pending", "Requests in flight through a pool (the circuit breaker's count).", []string{"pool"}, nil)
	parkedDesc   = prometheus.NewDesc("lb_http1_parked_connections", "Idle HTTP/1.x keep-alive connections waiting without a goroutine (parked), by listener.", []string{"listener"}, nil)
	fastDesc     = prometheus.NewDesc("lb_http1_fast_requests_total", "HTTP/1.x requests served by the lb's own connection loop.", []string{"listener"}, nil)
	handoffDesc  = prometheus.NewDesc("lb_http1_handoffs_total", "HTTP/1.x connections the lb's own loop handed to net/http (a request it does not parse itself).", []string{"listener"}, nil)
	h2ConnsDesc  = prometheus.NewDesc("lb_http2_connections", "Client connections the lb's own HTTP/2 engine serves now (TLS listeners, and native_grpc listeners' h2c), by listener.", []string{"listener"}, nil)
	h2ReqsDesc   = prometheus.NewDesc("lb_http2_requests_total", "HTTP requests (not relayed gRPC calls) the lb's own HTTP/2 engine served, by listener.", []string{"listener"}, nil)
	proxyRefDesc = prometheus.NewDesc("lb_proxy_protocol_refused_total", "Connections of a proxy_protocol listener closed for their PROXY header: reason untrusted (the peer is not in trusted_proxies; no header is read) or invalid (the bytes are no valid header, or one that names no TCP client). A connection that closes or times out before a whole header is not counted.", []string{"listener", "reason"}, nil)
)

var (
	pollerLoadedDesc   = prometheus.NewDesc("lb_answer_poller_loaded", "1 while upstream answers are awaited in the lb's own poller (the process is saturated), 0 while in Go's; absent where there is none.", nil, nil)
	pollerSwitchesDesc = prometheus.NewDesc("lb_answer_poller_switches_total", "Times the answer poller was turned on or off by the load.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pollerLoadedDesc
	ch <- pollerSwitchesDesc
	ch <- inflightDesc
	ch <- healthyDesc
	ch <- ejectedDesc
	ch <- pendingDesc
	ch <- fastDesc
	ch <- handoffDesc
	ch <- parkedDesc
	ch <- h2ConnsDesc
	ch <- h2ReqsDesc
	ch <- proxyRefDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock() // Start sets each listener's fast loop under it
	for _, l := range c.s.listeners {
		if f := l.fast; f != nil {
			ch <- prometheus.MustNewConstMetric(fastDesc, prometheus.CounterValue, float64(f.served.Load()), l.cfg.Name)
			ch <- prometheus.MustNewConstMetric(handoffDesc, prometheus.CounterValue, float64(f.handedOff.Load()), l.cfg.Name)
			ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(f.parked.Load()), l.cfg.Name)
		}
		if sn := l.sniff; sn != nil && sn.proxy != nil {
			ch <- prometheus.MustNewConstMetric(proxyRefDesc, prometheus.CounterValue, float64(sn.refusedUntrusted.Load()), l.cfg.Name, "untrusted")
			ch <- prometheus.MustNewConstMetric(proxyRefDesc, prometheus.CounterValue, float64(sn.refusedInvalid.Load()), l.cfg.Name, "invalid")
		}
		e := l.h2
		if e == nil {
			e, _ = l.grpcSrv.(*h2Relay)
		}
		if e != nil {
			e.mu.Lock()
			conns := len(e.conns)
			e.mu.Unlock()
			ch <- prometheus.MustNewConstMetric(h2ConnsDesc, prometheus.GaugeValue, float64(conns), l.cfg.Name)
			ch <- prometheus.MustNewConstMetric(h2ReqsDesc, prometheus.CounterValue, float64(e.httpRequests.Load()), l.cfg.Name)
		}
	}
	c.s.mu.Unlock()
	if present, loaded, switches := answerPollerState(); present {
		ch <- prometheus.MustNewConstMetric(pollerLoadedDesc, prometheus.GaugeValue, boolFloat(loaded))
		ch <- prometheus.MustNewConstMetric(pollerSwitchesDesc, prometheus.CounterValue, float64(switches))
	}
	st := c.s.state.Load()
	if st == nil {
		return
	}
	now := time.Now().UnixNano()
	for _, p := range st.pools {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(p.breaker.Load()), p.Name)
		for _, u := range p.upstreams {
			ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(u.Inflight()), p.Name, u.Addr)
			ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, boolFloat(u.healthy.Load()), p.Name, u.Addr)
			ch <- prometheus.MustNewConstMetric(ejectedDesc, prometheus.GaugeValue, boolFloat(u.ejectedUntil.Load() > now), p.Name, u.Addr)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var _ prometheus.Collector = (*stateCollector)(nil)
