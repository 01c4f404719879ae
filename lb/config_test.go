package lb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("example.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Listeners, 2)
	require.True(t, cfg.Listeners[0].H2C)
	require.True(t, cfg.Listeners[0].NativeGRPC)
	require.Equal(t, ByteSize(64<<10), cfg.Listeners[0].MaxHeaderBytes)
	require.Equal(t, Duration(60*time.Second), cfg.Listeners[0].SendTimeout)
	require.Equal(t, Duration(60*time.Second), cfg.Listeners[1].SendTimeout, "default send_timeout")
	require.Equal(t, "matcher-grpc", cfg.Routes[0].Name)
	require.True(t, cfg.Routes[0].Match.GRPC, "grpc_services implies grpc")
	require.Equal(t, Duration(5*time.Second), cfg.Routes[2].TryTimeout)
	require.Equal(t, ByteSize(32<<20), cfg.Routes[2].MaxBodyBytes)
	require.Equal(t, 2, *cfg.Routes[3].Retries, "default retries")
	require.Equal(t, "consistent_hash", cfg.Pools[2].Policy)
	require.Equal(t, 5, cfg.Pools[0].Outlier.ConsecutiveFailures)
}

func TestDefaultAllInOneIsValid(t *testing.T) {
	cfg := DefaultAllInOne(":8080", "127.0.0.1:8081", "127.0.0.1:9090")
	require.NoError(t, cfg.Validate())
	require.True(t, cfg.Listeners[0].H2C)
	rt := &router{}
	for _, rc := range cfg.Routes {
		rt.routes = append(rt.routes, &route{name: rc.Name, matcher: newRouteMatcher(rc.Match)})
	}
	grpcReq := newRequest(t, "POST", "http://x/vigil.backend.v1.BackendService/GetPerson", "application/grpc")
	require.Equal(t, "grpc", rt.match(grpcReq).name)
	restReq := newRequest(t, "GET", "http://x/v1/persons", "")
	require.Equal(t, "gateway", rt.match(restReq).name)
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

const validBase = `
listeners: [{address: "127.0.0.1:0"}]
pools: [{name: a, upstreams: ["127.0.0.1:1"]}]
routes: [{pool: a}]
`

func TestParseConfigRejectsWithPreciseMessage(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", ``, "empty config"},
		{"no listeners", `routes: [{pool: a}]`, "listeners: at least one listener"},
		{"unknown key", validBase + "\nretry_budgett: {}", "field retry_budgett not found"},
		{"NaN retry ratio", validBase + "\nretry_budget: {ratio: .nan}", "retry_budget.ratio: NaN is outside [0, 1]"},
		{"huge max_header_bytes", `
listeners: [{address: ":1", max_header_bytes: 4GiB}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a}]`, "listeners[0].max_header_bytes: 4294967296 is above the 16 MiB maximum"},
		{"NaN rate", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, rate_limit: {key: ip, rate: .nan, burst: 1}}]`, "routes[0].rate_limit.rate: must be a number above 0"},
		{"infinite rate", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, rate_limit: {key: ip, rate: .inf, burst: 1}}]`, "routes[0].rate_limit.rate: must be a number above 0"},
		{"unknown pool", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a}, {name: x, pool: b}]`, `routes[1].pool: unknown pool "b" (defined: a)`},
		{"forwarded_proto", `
listeners: [{address: ":1", forwarded_proto: HTTPS}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a}]`, `listeners[0].forwarded_proto: "HTTPS" is not https, its one value`},
		{"bad upstream", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["nohostport"]}]
routes: [{pool: a}]`, `pools[0].upstreams[0]: "nohostport" is not host:port`},
		{"bad port", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:99999"]}]
routes: [{pool: a}]`, `pools[0].upstreams[0]: port "99999"`},
		{"bad policy", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"], policy: fastest}]
routes: [{pool: a}]`, `pools[0].policy: "fastest" is not one of`},
		{"hash without header", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"], policy: consistent_hash}]
routes: [{pool: a}]`, `pools[0].hash_header: required`},
		{"bad duration", `
listeners: [{address: ":1", read_header_timeout: soon}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a}]`, `line 2: bad duration "soon"`},
		{"bad size", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, max_body_bytes: 10 parsecs}]`, `line 4: bad size "10 parsecs"`},
		{"path prefix", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, match: {path_prefix: api}}]`, `routes[0].match.path_prefix: "api" must start with /`},
		{"bad host", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, match: {hosts: ["a.*.com"]}}]`, `routes[0].match.hosts[0]`},
		{"bad rate key", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, rate_limit: {key: cookie, rate: 1, burst: 1}}]`, `routes[0].rate_limit.key: "cookie"`},
		{"try longer than total", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a, timeout: 1s, try_timeout: 2s}]`, `routes[0].try_timeout: 2s is longer than timeout 1s`},
		{"tls without key", `
listeners: [{address: ":1", tls: {cert_file: c.pem}}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a}]`, `listeners[0].tls: cert_file and key_file are both required`},
		{"health type", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"], health_check: {type: tcp}}]
routes: [{pool: a}]`, `pools[0].health_check.type: "tcp" is not http or grpc`},
		{"duplicate upstream", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1", "h:1"]}]
routes: [{pool: a}]`, `pools[0].upstreams[1]: "h:1" is listed twice`},
		{"native grpc without h2c", `
listeners: [{address: ":1", native_grpc: true}]
pools: [{name: a, upstreams: ["h:1"]}]
routes: [{pool: a}]`, `listeners[0].native_grpc: needs h2c: true`},
		{"negative keepalive", `
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"], protocol: h2c, keepalive: {time: -1s}}]
routes: [{pool: a}]`, `negative duration "-1s"`},
		{"yaml syntax", "listeners: [", "yaml:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(validBase))
	require.NoError(t, err)
	require.Equal(t, "round_robin", cfg.Pools[0].Policy)
	require.Equal(t, "http1", cfg.Pools[0].Protocol)
	require.Equal(t, Duration(defaultReadHeaderTimeout), cfg.Listeners[0].ReadHeaderTimeout)
	require.Equal(t, defaultRetries, *cfg.Routes[0].Retries)
	require.True(t, *cfg.AccessLog)
	require.Equal(t, KeepaliveConfig{Time: Duration(defaultKeepaliveTime), Timeout: Duration(defaultKeepaliveTimeout)}, cfg.Pools[0].Keepalive)
	off, err := ParseConfig([]byte(strings.Replace(validBase, "upstreams:", "keepalive: {off: true}, upstreams:", 1)))
	require.NoError(t, err)
	require.False(t, off.Pools[0].Keepalive.enabled())
	require.True(t, cfg.Pools[0].Keepalive.enabled())
	// SetDefaults is idempotent, so a parsed config validates again as is.
	cfg.SetDefaults()
	require.NoError(t, cfg.Validate())
}

func TestByteSize(t *testing.T) {
	cases := map[string]int64{"0": 0, "1024": 1024, "64KiB": 64 << 10, "10MiB": 10 << 20, "1GiB": 1 << 30, "5KB": 5000, "7 MiB": 7 << 20}
	for in, want := range cases {
		got, err := parseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "MiB", "99999999999999999999"} {
		_, err := parseByteSize(bad)
		require.Error(t, err, bad)
	}
}

// A setting given alone takes defaults for its companions that suit it:
// a health check interval under the default timeout, a base ejection
// over the default maximum.
func TestDefaultsFollowTheSettingsGiven(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1"], health_check: {type: http, interval: 1s}, outlier: {base_ejection: 5m}}]
routes: [{pool: a}]`))
	require.NoError(t, err)
	require.Equal(t, Duration(time.Second), cfg.Pools[0].HealthCheck.Timeout)
	require.Equal(t, Duration(5*time.Minute), cfg.Pools[0].Outlier.MaxEjection)
}

// Settings where 0 means something keep an explicit 0 (the defaults are
// for settings left out): a retry budget of none, a pool whose outlier
// detection ejects none. They used to turn into 0.2, 10 and 50 without a
// word.
func TestExplicitZerosAreKept(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
listeners: [{address: ":1"}]
pools: [{name: a, upstreams: ["h:1", "h:2"], outlier: {consecutive_failures: 1, max_ejected_percent: 0}}]
routes: [{pool: a}]
retry_budget: {ratio: 0, min_per_second: 0}`))
	require.NoError(t, err)
	require.Zero(t, *cfg.RetryBudget.Ratio)
	require.Zero(t, *cfg.RetryBudget.MinPerSecond)
	require.Zero(t, *cfg.Pools[0].Outlier.MaxEjectedPercent)
	b := newRetryBudget(cfg.RetryBudget)
	b.request()
	require.False(t, b.tryRetry(), "a budget of 0 and 0 allows no retry")

	def, err := ParseConfig([]byte(validBase))
	require.NoError(t, err)
	require.Equal(t, defaultRetryRatio, *def.RetryBudget.Ratio)
	require.Equal(t, defaultRetryMinPerSecond, *def.RetryBudget.MinPerSecond)
	require.Equal(t, defaultMaxEjectedPercent, *def.Pools[0].Outlier.MaxEjectedPercent)
}
