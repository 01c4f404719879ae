package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type matcherSection struct {
	Shards    int           `yaml:"shards"`
	Threshold float64       `yaml:"threshold"`
	Refresh   time.Duration `yaml:"refresh"`
	Groups    []string      `yaml:"groups"`
	APISecret string        `yaml:"api_secret" secret:"true"`
}

func (m *matcherSection) SetDefaults() { m.Shards = 4; m.Threshold = 0.5; m.Refresh = time.Minute }
func (m *matcherSection) Validate() error {
	if m.Shards <= 0 {
		return errBadShards
	}
	return nil
}

var errBadShards = errorString("shards: must be positive")

type errorString string

func (e errorString) Error() string { return string(e) }

func envOf(kv map[string]string) (func(string) (string, bool), func() []string) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok },
		func() []string {
			var out []string
			for k, v := range kv {
				out = append(out, k+"="+v)
			}
			return out
		}
}

func TestDefaults(t *testing.T) {
	lookup, environ := envOf(nil)
	c, err := Parse(nil, lookup, environ)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", c.GRPCListen)
	require.Equal(t, "127.0.0.1:8081", c.HTTPListen)
	require.Equal(t, ":8080", c.PublicListen)
	require.Equal(t, "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable", c.DatabaseURL)
	require.Equal(t, "./var", c.DataDir)
	require.Empty(t, c.Kafka.Brokers)
	require.Empty(t, c.S3.Endpoint)
	require.Empty(t, c.Redis.Addr)
}

func TestFileEnvAndSections(t *testing.T) {
	yamlDoc := `
grpc_listen: 127.0.0.1:7000
kafka:
  brokers: [a:9092, b:9092]
peers:
  matcher: 10.0.0.5:9090
matcher:
  shards: 8
  groups: [x]
`
	lookup, environ := envOf(map[string]string{
		"VIGIL_HTTP_LISTEN":        "127.0.0.1:7001",
		"VIGIL_REDIS_ADDR":         "127.0.0.1:6379",
		"VIGIL_PEERS_IMAGEAPI":     "10.0.0.6:9090",
		"VIGIL_INTERNAL_TOKEN":     "tok",
		"VIGIL_MATCHER_THRESHOLD":  "0.7",
		"VIGIL_MATCHER_REFRESH":    "5s",
		"VIGIL_MATCHER_API_SECRET": "s3cret",
		"VIGIL_MATCHER_GROUPS":     "g1, g2",
	})
	c, err := Parse([]byte(yamlDoc), lookup, environ)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7000", c.GRPCListen)
	require.Equal(t, "127.0.0.1:7001", c.HTTPListen)
	require.Equal(t, []string{"a:9092", "b:9092"}, c.Kafka.Brokers)
	require.Equal(t, "127.0.0.1:6379", c.Redis.Addr)
	require.Equal(t, map[string]string{"matcher": "10.0.0.5:9090", "imageapi": "10.0.0.6:9090"}, c.Peers)
	require.Equal(t, "tok", c.InternalToken)
	require.Equal(t, []string{"matcher"}, c.Sections())

	m, err := SectionOf[matcherSection](c, "matcher")
	require.NoError(t, err)
	require.Equal(t, matcherSection{Shards: 8, Threshold: 0.7, Refresh: 5 * time.Second, Groups: []string{"g1", "g2"}, APISecret: "s3cret"}, m)

	// A section absent from the file still gets its defaults.
	var other matcherSection
	require.NoError(t, c.Section("verifymatcher", &other))
	require.Equal(t, 4, other.Shards)

	eff := c.Effective()
	require.Equal(t, "[redacted]", eff["internal_token"])
	require.Equal(t, "[redacted]", eff["matcher"].(map[string]any)["api_secret"])
	require.Equal(t, "5s", eff["matcher"].(map[string]any)["refresh"])
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		section bool
		want    string
	}{
		{name: "unknown core key goes to sections, unknown section key refused", yaml: "matcher:\n  shardz: 3\n", section: true, want: "shardz"},
		{name: "secret in file", yaml: "internal_token: abc\n", want: "VIGIL_INTERNAL_TOKEN"},
		{name: "section secret in file", yaml: "matcher:\n  api_secret: abc\n", section: true, want: "VIGIL_MATCHER_API_SECRET"},
		{name: "bad env number", env: map[string]string{"VIGIL_MATCHER_SHARDS": "many"}, section: true, want: "VIGIL_MATCHER_SHARDS"},
		{name: "section validate", env: map[string]string{"VIGIL_MATCHER_SHARDS": "0"}, section: true, want: "shards: must be positive"},
		{name: "bad log level", env: map[string]string{"VIGIL_LOG_LEVEL": "loud"}, want: "log_level"},
		{name: "s3 endpoint without keys", yaml: "s3:\n  endpoint: s3.example.com\n", want: "access_key"},
		{name: "bad yaml", yaml: "grpc_listen: [\n", want: "parse config"},
		{name: "wrong type", yaml: "kafka: 3\n", want: "config"},
		{name: "bad trusted proxy", env: map[string]string{"VIGIL_TRUSTED_PROXIES": "10.0.0.0/8, lb.example"}, want: `trusted_proxies[1]: "lb.example" is neither`},
		{name: "proxy protocol without trusted proxies", env: map[string]string{"VIGIL_PROXY_PROTOCOL": "true"}, want: "proxy_protocol: needs trusted_proxies"},
		{name: "forwarded proto", env: map[string]string{"VIGIL_FORWARDED_PROTO": "tls"}, want: `forwarded_proto: "tls" is not https`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup, environ := envOf(tt.env)
			c, err := Parse([]byte(tt.yaml), lookup, environ)
			if tt.section {
				require.NoError(t, err)
				var m matcherSection
				err = c.Section("matcher", &m)
			}
			require.Error(t, err)
			require.True(t, strings.Contains(err.Error(), tt.want), "error %q should mention %q", err, tt.want)
		})
	}
}

func TestRedactURL(t *testing.T) {
	lookup, environ := envOf(map[string]string{"VIGIL_DATABASE_URL": "postgres://u:hunter2@db:5432/vigil"})
	c, err := Parse(nil, lookup, environ)
	require.NoError(t, err)
	require.NotContains(t, c.Effective()["database_url"], "hunter2")
	require.Contains(t, c.Effective()["database_url"], "u:xxxxx@db")
}
