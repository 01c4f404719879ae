package lb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole load balancer configuration: where to listen, which
// requests go where, and how each upstream pool is balanced and guarded.
// It is loaded from YAML (see example.yaml) and owns its defaults and
// validation, so a Config that passed Validate can be served as is.
type Config struct {
	Listeners   []ListenerConfig `yaml:"listeners"`
	Routes      []RouteConfig    `yaml:"routes"`
	Pools       []PoolConfig     `yaml:"pools"`
	RetryBudget RetryBudget      `yaml:"retry_budget"`
	// AccessLog turns the per-request slog line on (default true).
	AccessLog *bool `yaml:"access_log"`
	// DrainTimeout bounds the drain of `vigil lb` when it is told to stop
	// (SIGTERM): requests in flight get that long to finish, then the
	// connections left (WebSockets, gRPC streams) are closed. Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// TrustedProxies are the peers in front of the lb (a cloud load
	// balancer, an ingress), as addresses or CIDR prefixes, whose
	// X-Forwarded-For and -Proto it believes: their X-Forwarded-Proto goes
	// upstream as it came, and the client (what a rate limit with key ip
	// counts, the access log's client, the X-Forwarded-For hop the lb
	// appends) is the nearest X-Forwarded-For hop that is not one of them,
	// as with nginx's real_ip_recursive. Such a proxy must set both fields
	// itself (overwrite X-Forwarded-Proto, append to X-Forwarded-For), or
	// its clients' own values pass for its. Any other peer's
	// X-Forwarded-Proto is replaced; X-Forwarded-Host is always the
	// request's Host. On a listener with proxy_protocol, these are the
	// balancers that may send a PROXY header, and no X-Forwarded-* field is
	// believed there. Default none: the lb is the edge.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// ListenerConfig is one listening socket.
type ListenerConfig struct {
	Name    string     `yaml:"name"`
	Address string     `yaml:"address"`
	TLS     *TLSConfig `yaml:"tls"`
	// H2C accepts HTTP/2 with prior knowledge on a plain-text listener, which
	// is how gRPC clients speak without TLS.
	H2C bool `yaml:"h2c"`
	// NativeGRPC (with h2c) serves HTTP/2 connections with the lb's own
	// frame-level relay (h2relay*.go): frames of many calls share one
	// write, upstream connections are multiplexed, and messages are never
	// reassembled; about a third of the CPU per call of net/http's HTTP/2.
	// HTTP/1.1 on the same port is unaffected; plain (non-gRPC) requests
	// over h2c are proxied as HTTP requests by the same engine
	// (h2serve.go). gRPC upstreams see the lb's address as :authority (the
	// client's is in X-Forwarded-Host).
	NativeGRPC bool `yaml:"native_grpc"`
	// ProxyProtocol: every connection begins with a PROXY protocol header
	// (version 1 or 2), which a layer-4 load balancer in front (AWS NLB,
	// HAProxy in TCP mode, an ingress controller) sends with the client's
	// address; that address is then the connection's client. Only peers
	// in trusted_proxies may send one (so it must not be empty), and a
	// connection without a valid header, or from another peer, is closed,
	// as is one whose header names no TCP client (v1 UNKNOWN; v2 UNSPEC,
	// UNIX or UDP), which would have no client of its own: rate limits
	// with key ip would count its requests as the balancer's. v2's LOCAL
	// (the balancer's health checks) is served as the balancer's. On such
	// a listener no X-Forwarded-* field is believed, whatever
	// trusted_proxies says: the balancers write none, so they would be
	// the client's own. X-Forwarded-Proto is the lb's: https where it
	// terminates TLS, or where a v2 header's SSL TLV says the balancer
	// did (HAProxy's send-proxy-v2-ssl), or with forwarded_proto; http
	// otherwise. The header must arrive within read_header_timeout.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// ForwardedProto "https" says a layer-4 balancer in front terminates
	// the clients' TLS and passes the lb plain TCP (AWS NLB's TLS
	// listeners, HAProxy or Envoy in TCP mode): the X-Forwarded-Proto the
	// lb sets is then https, as upstreams building links and redirects
	// need; without it they would see http and redirect the clients to
	// https, again and again. A trusted HTTP proxy's own X-Forwarded-Proto,
	// where believed (trusted_proxies), still wins. Default: the lb's own,
	// https only where it terminates TLS itself (or where a PROXY header
	// says so).
	ForwardedProto string `yaml:"forwarded_proto"`
	// ReadHeaderTimeout bounds how long a client may take to send its headers
	// (the slowloris defence).
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// BodyReadTimeout bounds how long a request body may pause between
	// bytes (nginx's client_body_timeout): past it, the request ends
	// with 408 and its upstream connection is let go. A body that stops
	// half-way otherwise holds an upstream connection, on a route without
	// a timeout, for as long as its client likes: enough such clients
	// fill a pool's max_pending. gRPC calls are exempt (a client stream
	// may rightly idle). Default 60s.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
	// SendTimeout bounds how long a write to a client may make no progress
	// (nginx's send_timeout): past it the connection is closed, or on
	// HTTP/2 the stream that waits for the client's credit is reset. A
	// client that stops reading its answer (slow read, slowloris's mirror)
	// otherwise holds the upstream connection the answer comes on for as
	// long as it keeps its own open. Default 60s.
	SendTimeout    Duration `yaml:"send_timeout"`
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
}

// TLSConfig names the certificate files of a TLS listener. ALPN offers h2
// and http/1.1.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RouteConfig sends matching requests to one pool. Routes are tried in the
// order written; the first match wins.
type RouteConfig struct {
	Name  string      `yaml:"name"`
	Match MatchConfig `yaml:"match"`
	Pool  string      `yaml:"pool"`
	// Timeout bounds the whole exchange including the streamed body; zero
	// means none (for long streams, WebSockets and SSE).
	Timeout Duration `yaml:"timeout"`
	// TryTimeout bounds one attempt until the upstream's response headers
	// arrive, counted from when the request's body is whole (a slow
	// upload is the client's, which body_read_timeout and Timeout bound,
	// not the upstream's); an idempotent request that hits it is retried
	// elsewhere.
	// gRPC calls the lb's HTTP/2 engine relays (h2c ones on a native_grpc
	// listener, and those over TLS, to an h2c pool) do not use it: they are retried only
	// when nothing reached an upstream (dial failure, REFUSED_STREAM, or
	// a GOAWAY covering the stream), and Timeout (or the client's gRPC
	// deadline) bounds them.
	TryTimeout Duration `yaml:"try_timeout"`
	// Retries is the number of extra attempts after the first (default 2).
	// Only idempotent requests without a body are retried after they
	// reached an upstream; any request is retried after a failed connect.
	Retries *int `yaml:"retries"`
	// MaxBodyBytes refuses larger request bodies with 413 (gRPC:
	// ResourceExhausted, counting all request messages of a call); zero
	// means no limit.
	MaxBodyBytes ByteSize         `yaml:"max_body_bytes"`
	RateLimit    *RateLimitConfig `yaml:"rate_limit"`
}

// MatchConfig holds the conditions of a route; all given ones must hold.
type MatchConfig struct {
	// Hosts are exact host names or "*.example.com" wildcards (any depth);
	// empty matches every host.
	Hosts []string `yaml:"hosts"`
	// PathPrefix is a plain string prefix of the URL path.
	PathPrefix string `yaml:"path_prefix"`
	// GRPC matches requests whose content-type is application/grpc[+…].
	GRPC bool `yaml:"grpc"`
	// GRPCServices are fully qualified service names ("pkg.v1.FooService");
	// setting it implies GRPC.
	GRPCServices []string `yaml:"grpc_services"`
}

// RateLimitConfig is a token bucket per client.
type RateLimitConfig struct {
	// Key is "ip" or "header:<Name>" (for example header:X-Api-Key); a
	// request without that header is limited by its IP.
	Key   string  `yaml:"key"`
	Rate  float64 `yaml:"rate"`  // tokens per second
	Burst int     `yaml:"burst"` // bucket size
}

// PoolConfig is a set of equivalent upstreams.
type PoolConfig struct {
	Name      string   `yaml:"name"`
	Upstreams []string `yaml:"upstreams"`
	// Protocol spoken to the upstreams: http1 (default), h2c (HTTP/2 without
	// TLS, for gRPC), or h2 (HTTP/2 over TLS).
	Protocol string `yaml:"protocol"`
	// TLSInsecureSkipVerify is for h2 upstreams with self-signed certificates.
	TLSInsecureSkipVerify bool `yaml:"tls_insecure_skip_verify"`
	// Policy: round_robin (default), least_requests, p2c_ewma or consistent_hash.
	Policy string `yaml:"policy"`
	// HashHeader is the request header consistent_hash keys on.
	HashHeader string `yaml:"hash_header"`
	// MaxPending is the circuit breaker: requests in flight to the pool
	// above this are refused with 503 at once (default 10000).
	MaxPending int `yaml:"max_pending"`
	// MaxIdleConnsPerUpstream sizes the keep-alive pool (default 256).
	MaxIdleConnsPerUpstream int                `yaml:"max_idle_conns_per_upstream"`
	DialTimeout             Duration           `yaml:"dial_timeout"`
	HealthCheck             *HealthCheckConfig `yaml:"health_check"`
	Outlier                 OutlierConfig      `yaml:"outlier"`
	// Keepalive finds dead HTTP/2 upstream connections (h2c, h2).
	Keepalive KeepaliveConfig `yaml:"keepalive"`
}

// KeepaliveConfig: an HTTP/2 upstream connection that has received
// nothing for Time is sent a PING, and closed when no frame at all comes
// back within Timeout; its calls then fail with UNAVAILABLE instead of
// hanging on a peer that vanished without closing (a dead host, a
// dropped NAT entry). The frame relay of native_grpc listeners pings
// only while calls are open; net/http's transport (other listeners)
// pings idle connections too. Defaults: 15s and 5s; Off turns it off.
// The upstream must allow pings that often: grpc-go servers by default
// punish pings closer than 5 minutes apart while they send nothing
// (GOAWAY too_many_pings); vigil's own services allow 10 s.
type KeepaliveConfig struct {
	Time    Duration `yaml:"time"`
	Timeout Duration `yaml:"timeout"`
	Off     bool     `yaml:"off"`
}

func (k KeepaliveConfig) enabled() bool { return !k.Off && k.Time > 0 }

// HealthCheckConfig is the active health check of a pool.
type HealthCheckConfig struct {
	// Type is http or grpc (grpc.health.v1.Health/Check).
	Type string `yaml:"type"`
	// Path for http checks (default /healthz); a 2xx answer is healthy.
	Path string `yaml:"path"`
	// Service for grpc checks; empty asks about the whole server.
	Service            string   `yaml:"service"`
	Interval           Duration `yaml:"interval"`
	Timeout            Duration `yaml:"timeout"`
	HealthyThreshold   int      `yaml:"healthy_threshold"`
	UnhealthyThreshold int      `yaml:"unhealthy_threshold"`
}

// OutlierConfig is passive ejection: an upstream that fails this many
// requests in a row (connect errors, try time-outs, 502/503/504) is taken out
// of rotation for BaseEjection times the number of its ejections, capped at
// MaxEjection.
type OutlierConfig struct {
	ConsecutiveFailures int      `yaml:"consecutive_failures"`
	BaseEjection        Duration `yaml:"base_ejection"`
	MaxEjection         Duration `yaml:"max_ejection"`
	// MaxEjectedPercent keeps at least part of the pool serving (default
	// 50; 0 ejects none).
	MaxEjectedPercent *int `yaml:"max_ejected_percent"`
}

// RetryBudget caps retries so that a sick pool is not hammered: each
// pool's retries in the last 10 s may not exceed Ratio of its requests
// plus MinPerSecond*10. Both may be 0 (given, not left out: the defaults
// are 0.2 and 10); both 0 allow no retries.
type RetryBudget struct {
	Ratio        *float64 `yaml:"ratio"`
	MinPerSecond *int     `yaml:"min_per_second"`
}

// Duration is a time.Duration written as "250ms" or "5s" in YAML.
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be a string like \"5s\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q (want e.g. \"250ms\", \"5s\")", n.Line, n.Value)
	}
	if v < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size in bytes, written as 1048576, "512KiB", "10MiB" or "1GiB".
type ByteSize int64

// UnmarshalYAML accepts plain integers and KiB/MiB/GiB (or KB/MB/GB) suffixes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: bad size %q (want e.g. 65536, \"64KiB\", \"10MiB\")", n.Line, n.Value)
	}
	*b = ByteSize(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, errors.New("bad size")
	}
	return v * mult, nil
}

// LoadConfig reads, parses and validates a YAML config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lb config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("lb config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses YAML, fills defaults and validates. Unknown keys are
// errors (a typo must not silently disable a limit).
func ParseConfig(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, err
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Default values, chosen for a LAN deployment in front of Go services.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 120 * time.Second
	defaultBodyReadTimeout   = 60 * time.Second
	defaultSendTimeout       = 60 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
	maxMaxHeaderBytes        = 16 << 20
	defaultRetries           = 2
	defaultMaxPending        = 10000
	defaultDrainTimeout      = 30 * time.Second
	defaultMaxIdlePerHost    = 256
	defaultDialTimeout       = 2 * time.Second
	defaultKeepaliveTime     = 15 * time.Second
	defaultKeepaliveTimeout  = 5 * time.Second
	defaultHCInterval        = 5 * time.Second
	defaultHCTimeout         = 2 * time.Second
	defaultConsecutiveFails  = 5
	defaultBaseEjection      = 10 * time.Second
	defaultMaxEjection       = 2 * time.Minute
	defaultMaxEjectedPercent = 50
	defaultRetryRatio        = 0.2
	defaultRetryMinPerSecond = 10
)

// SetDefaults fills every unset field with its default. It is idempotent.
func (c *Config) SetDefaults() {
	if c.AccessLog == nil {
		on := true
		c.AccessLog = &on
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = Duration(defaultDrainTimeout)
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener%d", i)
		}
		if l.ReadHeaderTimeout == 0 {
			l.ReadHeaderTimeout = Duration(defaultReadHeaderTimeout)
		}
		if l.IdleTimeout == 0 {
			l.IdleTimeout = Duration(defaultIdleTimeout)
		}
		if l.BodyReadTimeout == 0 {
			l.BodyReadTimeout = Duration(defaultBodyReadTimeout)
		}
		if l.SendTimeout == 0 {
			l.SendTimeout = Duration(defaultSendTimeout)
		}
		if l.MaxHeaderBytes == 0 {
			l.MaxHeaderBytes = defaultMaxHeaderBytes
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Name == "" {
			r.Name = fmt.Sprintf("route%d", i)
		}
		if r.Retries == nil {
			n := defaultRetries
			r.Retries = &n
		}
		if len(r.Match.GRPCServices) > 0 {
			r.Match.GRPC = true
		}
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.Protocol == "" {
			p.Protocol = "http1"
		}
		if p.Policy == "" {
			p.Policy = "round_robin"
		}
		if p.MaxPending == 0 {
			p.MaxPending = defaultMaxPending
		}
		if p.MaxIdleConnsPerUpstream == 0 {
			p.MaxIdleConnsPerUpstream = defaultMaxIdlePerHost
		}
		if p.DialTimeout == 0 {
			p.DialTimeout = Duration(defaultDialTimeout)
		}
		if p.Keepalive.Time == 0 {
			p.Keepalive.Time = Duration(defaultKeepaliveTime)
		}
		if p.Keepalive.Timeout == 0 {
			p.Keepalive.Timeout = Duration(defaultKeepaliveTimeout)
		}
		if hc := p.HealthCheck; hc != nil {
			if hc.Type == "" {
				hc.Type = "http"
			}
			if hc.Type == "http" && hc.Path == "" {
				hc.Path = "/healthz"
			}
			if hc.Interval == 0 {
				hc.Interval = Duration(defaultHCInterval)
			}
			if hc.Timeout == 0 {
				// Never past the interval the user chose (validation
				// requires that), so that interval: 1s alone is valid.
				hc.Timeout = min(Duration(defaultHCTimeout), hc.Interval)
			}
			if hc.HealthyThreshold == 0 {
				hc.HealthyThreshold = 1
			}
			if hc.UnhealthyThreshold == 0 {
				hc.UnhealthyThreshold = 2
			}
		}
		o := &p.Outlier
		if o.ConsecutiveFailures == 0 {
			o.ConsecutiveFailures = defaultConsecutiveFails
		}
		if o.BaseEjection == 0 {
			o.BaseEjection = Duration(defaultBaseEjection)
		}
		if o.MaxEjection == 0 {
			// Never below the base ejection the user chose.
			o.MaxEjection = max(Duration(defaultMaxEjection), o.BaseEjection)
		}
		if o.MaxEjectedPercent == nil {
			o.MaxEjectedPercent = ptrTo(defaultMaxEjectedPercent)
		}
	}
	if c.RetryBudget.Ratio == nil {
		c.RetryBudget.Ratio = ptrTo(defaultRetryRatio)
	}
	if c.RetryBudget.MinPerSecond == nil {
		c.RetryBudget.MinPerSecond = ptrTo(defaultRetryMinPerSecond)
	}
}

// Validate reports the first problem, naming the field as a path such as
// routes[2].pool, so an operator can find it in the file.
func (c *Config) Validate() error {
	if len(c.Listeners) == 0 {
		return errors.New("listeners: at least one listener is required")
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("drain_timeout: %v is negative", time.Duration(c.DrainTimeout))
	}
	for i, e := range c.TrustedProxies {
		if _, err := parseTrustedProxy(e); err != nil {
			return fmt.Errorf("trusted_proxies[%d]: %v", i, err)
		}
	}
	names := map[string]bool{}
	addrs := map[string]bool{}
	for i, l := range c.Listeners {
		at := fmt.Sprintf("listeners[%d]", i)
		if names[l.Name] {
			return fmt.Errorf("%s.name: duplicate listener name %q", at, l.Name)
		}
		names[l.Name] = true
		_, port, err := net.SplitHostPort(l.Address)
		if err != nil {
			return fmt.Errorf("%s.address: %q is not host:port: %v", at, l.Address, err)
		}
		if addrs[l.Address] && port != "0" {
			return fmt.Errorf("%s.address: %q is used by another listener", at, l.Address)
		}
		addrs[l.Address] = true
		if l.TLS != nil {
			if l.TLS.CertFile == "" || l.TLS.KeyFile == "" {
				return fmt.Errorf("%s.tls: cert_file and key_file are both required", at)
			}
			if l.H2C {
				return fmt.Errorf("%s: h2c is for plain-text listeners; a TLS listener negotiates h2 by ALPN", at)
			}
		}
		if l.NativeGRPC && !l.H2C {
			return fmt.Errorf("%s.native_grpc: needs h2c: true (it serves the listener's h2c connections)", at)
		}
		if l.ProxyProtocol && len(c.TrustedProxies) == 0 {
			// Believed from anyone, the header would let any client
			// choose the address that rate limits and logs see.
			return fmt.Errorf("%s.proxy_protocol: needs trusted_proxies, the addresses of the balancers that send the header", at)
		}
		if l.ForwardedProto != "" && l.ForwardedProto != "https" {
			return fmt.Errorf("%s.forwarded_proto: %q is not https, its one value (leave it out for the lb's own)", at, l.ForwardedProto)
		}
		if l.MaxHeaderBytes < 1024 {
			return fmt.Errorf("%s.max_header_bytes: %d is below the 1024-byte minimum", at, l.MaxHeaderBytes)
		}
		if l.MaxHeaderBytes > maxMaxHeaderBytes {
			// HTTP/2 announces it in 32 bits, and heads that large are
			// an attack, not a request.
			return fmt.Errorf("%s.max_header_bytes: %d is above the 16 MiB maximum", at, l.MaxHeaderBytes)
		}
	}
	pools := map[string]bool{}
	var poolNames []string
	for i, p := range c.Pools {
		at := fmt.Sprintf("pools[%d]", i)
		if p.Name == "" {
			return fmt.Errorf("%s.name: required", at)
		}
		if pools[p.Name] {
			return fmt.Errorf("%s.name: duplicate pool name %q", at, p.Name)
		}
		pools[p.Name] = true
		poolNames = append(poolNames, p.Name)
		if err := p.validate(at); err != nil {
			return err
		}
	}
	if len(c.Routes) == 0 {
		return errors.New("routes: at least one route is required")
	}
	routes := map[string]bool{}
	for i, r := range c.Routes {
		at := fmt.Sprintf("routes[%d]", i)
		if routes[r.Name] {
			return fmt.Errorf("%s.name: duplicate route name %q", at, r.Name)
		}
		routes[r.Name] = true
		if !pools[r.Pool] {
			return fmt.Errorf("%s.pool: unknown pool %q (defined: %s)", at, r.Pool, strings.Join(poolNames, ", "))
		}
		if err := r.validate(at); err != nil {
			return err
		}
	}
	if r := c.RetryBudget.Ratio; r != nil && !(*r >= 0 && *r <= 1) { // NaN too
		return fmt.Errorf("retry_budget.ratio: %v is outside [0, 1]", *r)
	}
	if m := c.RetryBudget.MinPerSecond; m != nil && *m < 0 {
		return fmt.Errorf("retry_budget.min_per_second: %d is negative", *m)
	}
	return nil
}

func (p PoolConfig) validate(at string) error {
	if len(p.Upstreams) == 0 {
		return fmt.Errorf("%s.upstreams: at least one upstream is required", at)
	}
	seen := map[string]bool{}
	for j, u := range p.Upstreams {
		host, port, err := net.SplitHostPort(u)
		if err != nil || host == "" {
			return fmt.Errorf("%s.upstreams[%d]: %q is not host:port", at, j, u)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%s.upstreams[%d]: port %q is not 1-65535", at, j, port)
		}
		if seen[u] {
			return fmt.Errorf("%s.upstreams[%d]: %q is listed twice", at, j, u)
		}
		seen[u] = true
	}
	switch p.Protocol {
	case "http1", "h2c", "h2":
	default:
		return fmt.Errorf("%s.protocol: %q is not one of http1, h2c, h2", at, p.Protocol)
	}
	switch p.Policy {
	case "round_robin", "least_requests", "p2c_ewma":
		if p.HashHeader != "" {
			return fmt.Errorf("%s.hash_header: only used with policy consistent_hash, not %q", at, p.Policy)
		}
	case "consistent_hash":
		if p.HashHeader == "" {
			return fmt.Errorf("%s.hash_header: required with policy consistent_hash", at)
		}
	default:
		return fmt.Errorf("%s.policy: %q is not one of round_robin, least_requests, p2c_ewma, consistent_hash", at, p.Policy)
	}
	if p.MaxPending < 0 {
		return fmt.Errorf("%s.max_pending: %d is negative", at, p.MaxPending)
	}
	if p.MaxIdleConnsPerUpstream < 0 {
		return fmt.Errorf("%s.max_idle_conns_per_upstream: %d is negative", at, p.MaxIdleConnsPerUpstream)
	}
	if hc := p.HealthCheck; hc != nil {
		switch hc.Type {
		case "http":
			if !strings.HasPrefix(hc.Path, "/") {
				return fmt.Errorf("%s.health_check.path: %q must start with /", at, hc.Path)
			}
		case "grpc":
			if hc.Path != "" {
				return fmt.Errorf("%s.health_check.path: not used by grpc checks (use service)", at)
			}
		default:
			return fmt.Errorf("%s.health_check.type: %q is not http or grpc", at, hc.Type)
		}
		if hc.Interval <= 0 || hc.Timeout <= 0 {
			// A config built in Go can hold what YAML would not: a
			// negative interval panicked the checker's ticker.
			return fmt.Errorf("%s.health_check: interval %v and timeout %v must be above 0", at, time.Duration(hc.Interval), time.Duration(hc.Timeout))
		}
		if hc.Timeout > hc.Interval {
			return fmt.Errorf("%s.health_check.timeout: %v is longer than interval %v", at, time.Duration(hc.Timeout), time.Duration(hc.Interval))
		}
		if hc.HealthyThreshold < 1 || hc.UnhealthyThreshold < 1 {
			return fmt.Errorf("%s.health_check: thresholds must be at least 1", at)
		}
	}
	o := p.Outlier
	if o.ConsecutiveFailures < 1 {
		return fmt.Errorf("%s.outlier.consecutive_failures: must be at least 1", at)
	}
	if o.MaxEjection < o.BaseEjection {
		return fmt.Errorf("%s.outlier.max_ejection: %v is shorter than base_ejection %v", at, time.Duration(o.MaxEjection), time.Duration(o.BaseEjection))
	}
	if m := o.MaxEjectedPercent; m != nil && (*m < 0 || *m > 100) {
		return fmt.Errorf("%s.outlier.max_ejected_percent: %d is outside 0-100", at, *m)
	}
	return nil
}

func (r RouteConfig) validate(at string) error {
	m := r.Match
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		return fmt.Errorf("%s.match.path_prefix: %q must start with /", at, m.PathPrefix)
	}
	for j, h := range m.Hosts {
		if err := validHostPattern(h); err != nil {
			return fmt.Errorf("%s.match.hosts[%d]: %q %v", at, j, h, err)
		}
	}
	for j, s := range m.GRPCServices {
		if s == "" || strings.ContainsAny(s, "/ ") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
			return fmt.Errorf("%s.match.grpc_services[%d]: %q is not a fully qualified service name like pkg.v1.FooService", at, j, s)
		}
	}
	if r.Retries != nil && (*r.Retries < 0 || *r.Retries > 10) { // nil until SetDefaults
		return fmt.Errorf("%s.retries: %d is outside 0-10", at, *r.Retries)
	}
	if r.Timeout != 0 && r.TryTimeout > r.Timeout {
		return fmt.Errorf("%s.try_timeout: %v is longer than timeout %v", at, time.Duration(r.TryTimeout), time.Duration(r.Timeout))
	}
	if rl := r.RateLimit; rl != nil {
		if rl.Key != "ip" && (!strings.HasPrefix(rl.Key, "header:") || len(rl.Key) == len("header:")) {
			return fmt.Errorf("%s.rate_limit.key: %q is not \"ip\" or \"header:<Name>\"", at, rl.Key)
		}
		if !(rl.Rate > 0) || math.IsInf(rl.Rate, 1) { // NaN fails the first
			return fmt.Errorf("%s.rate_limit.rate: must be a number above 0 requests per second", at)
		}
		if rl.Burst < 1 {
			return fmt.Errorf("%s.rate_limit.burst: must be at least 1", at)
		}
	}
	return nil
}

func validHostPattern(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" {
		return errors.New("is empty")
	}
	if strings.ContainsAny(name, "*/: ") {
		return errors.New("must be a host name or *.domain (no port, no other wildcards)")
	}
	return nil
}

// ptrTo returns a pointer to a copy of v: the defaults of the settings
// where 0 is a value of its own.
func ptrTo[T any](v T) *T { return &v }

// ratio and minPerSecond are the budget's settings, or their defaults
// where not set.
func (r RetryBudget) ratio() float64 {
	if r.Ratio == nil {
		return defaultRetryRatio
	}
	return *r.Ratio
}

func (r RetryBudget) minPerSecond() int {
	if r.MinPerSecond == nil {
		return defaultRetryMinPerSecond
	}
	return *r.MinPerSecond
}

// maxEjectedPercent is MaxEjectedPercent, or its default where not set.
func (o OutlierConfig) maxEjectedPercent() int {
	if o.MaxEjectedPercent == nil {
		return defaultMaxEjectedPercent
	}
	return *o.MaxEjectedPercent
}
