package lb

import (
	"net"
	"net/http"
	"strings"
)

// route is a compiled RouteConfig bound to its pool for one config
// generation.
type route struct {
	cfg     RouteConfig
	name    string
	matcher routeMatcher
	pool    *Pool
	limiter *rateLimiter // nil when the route has no rate limit
	metrics *routeMetrics
}

// routeMatcher is the matching half of a route, kept free of runtime state
// so that it can be fuzzed on its own.
type routeMatcher struct {
	exactHosts   map[string]bool
	wildcards    []string // ".example.com" suffixes
	pathPrefix   string
	grpc         bool
	grpcServices map[string]bool
}

func newRouteMatcher(m MatchConfig) routeMatcher {
	rm := routeMatcher{pathPrefix: m.PathPrefix, grpc: m.GRPC || len(m.GRPCServices) > 0}
	for _, h := range m.Hosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if strings.HasPrefix(h, "*.") {
			rm.wildcards = append(rm.wildcards, h[1:])
			continue
		}
		if rm.exactHosts == nil {
			rm.exactHosts = map[string]bool{}
		}
		rm.exactHosts[h] = true
	}
	if len(m.GRPCServices) > 0 {
		rm.grpcServices = map[string]bool{}
		for _, s := range m.GRPCServices {
			rm.grpcServices[s] = true
		}
	}
	return rm
}

// matches reports whether a request with this host (as sent, maybe with a
// port), path and content type belongs to the route.
func (m *routeMatcher) matches(host, path, contentType string) bool {
	if m.exactHosts != nil || m.wildcards != nil {
		if !m.hostMatches(host) {
			return false
		}
	}
	if !strings.HasPrefix(path, m.pathPrefix) {
		return false
	}
	if m.grpc {
		if !isGRPCContentType(contentType) {
			return false
		}
		if m.grpcServices != nil && !m.grpcServices[grpcServiceOf(path)] {
			return false
		}
	}
	return true
}

func (m *routeMatcher) hostMatches(host string) bool {
	host = stripPort(host)
	if !isLower(host) {
		host = strings.ToLower(host)
	}
	// "api.example.com." (fully qualified) is "api.example.com": it must
	// not slip past that host's route, and its limits, to a catch-all.
	host = strings.TrimSuffix(host, ".")
	if m.exactHosts[host] {
		return true
	}
	for _, suffix := range m.wildcards {
		// "*.example.com" wants at least one label before the suffix.
		if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// stripPort removes ":port" from a Host header, leaving IPv6 brackets off.
func stripPort(host string) string {
	if !strings.Contains(host, ":") {
		return host // the common case; SplitHostPort would allocate an error
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// isGRPCContentType accepts application/grpc and its +proto/+json variants.
func isGRPCContentType(ct string) bool {
	const g = "application/grpc"
	if !strings.HasPrefix(ct, g) {
		return false
	}
	return len(ct) == len(g) || ct[len(g)] == '+' || ct[len(g)] == ';'
}

// grpcServiceOf returns "pkg.Service" from a gRPC path "/pkg.Service/Method".
func grpcServiceOf(path string) string {
	if len(path) < 2 || path[0] != '/' {
		return ""
	}
	i := strings.IndexByte(path[1:], '/')
	if i < 0 {
		return ""
	}
	return path[1 : 1+i]
}

// router picks the first matching route in config order.
type router struct {
	routes []*route
}

func (rt *router) match(r *http.Request) *route {
	// The key is canonical: Header.Get would only canonicalise it again.
	return rt.matchParts(r.Host, r.URL.Path, headerGet(r.Header, "Content-Type"))
}

func (rt *router) matchParts(host, path, contentType string) *route {
	for _, ro := range rt.routes {
		if ro.matcher.matches(host, path, contentType) {
			return ro
		}
	}
	return nil
}

// httpRequestForHash carries a gRPC call's hash key to a Picker, which
// reads keys from an *http.Request.
type httpRequestForHash struct{ r http.Request }

func newHashRequest(header, value string) *httpRequestForHash {
	h := &httpRequestForHash{}
	h.r.Header = http.Header{}
	if value != "" {
		h.r.Header[header] = []string{value}
	}
	return h
}

// request is nil for pickers that do not look at the request.
func (h *httpRequestForHash) request() *http.Request {
	if h == nil {
		return nil
	}
	return &h.r
}

// hasDotSegment reports whether path has a "." or ".." segment. Routes
// match path prefixes as sent: /v1/../admin has the prefix /v1/ and
// means /admin to an upstream that resolves it, so such paths are
// refused (400) rather than routed (browsers and HTTP clients resolve dot
// segments before they send). Segments like .well-known are not dot
// segments. Upstreams differ in what else ends a segment: Java servers
// (Tomcat, Jetty, Spring) drop ";parameters" first, so /v1/..;/admin is
// /admin to them, and some servers take '\' for '/'; both count here.
func hasDotSegment(path string) bool {
	if !strings.Contains(path, "/.") && !strings.Contains(path, "\\.") {
		return false
	}
	for i := 0; i+1 < len(path); i++ {
		if path[i] != '/' && path[i] != '\\' || path[i+1] != '.' {
			continue
		}
		k := i + 2
		if k < len(path) && path[k] == '.' {
			k++
		}
		if k == len(path) || path[k] == '/' || path[k] == '?' || path[k] == ';' || path[k] == '\\' {
			return true
		}
	}
	return false
}
