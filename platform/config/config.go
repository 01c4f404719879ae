// Package config loads Vigil's one configuration file: core settings shared by every
// component at the top level, and one section per component (read by the component
// itself through Section). Every value can be overridden from the environment
// (VIGIL_<KEY>, VIGIL_<SECTION>_<KEY>); secrets come from the environment only.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "VIGIL_"

// Config is the loaded configuration: the core settings plus the raw sections that
// components decode on demand.
type Config struct {
	Core

	sections map[string]yaml.Node
	env      func(string) (string, bool)
	environ  func() []string

	mu sync.Mutex
	// decoded records every section read so far, for the effective-config log line.
	decoded map[string]any
}

// Core holds the settings every process shares.
type Core struct {
	// GRPCListen is the address of the process's one gRPC listener.
	GRPCListen string `yaml:"grpc_listen"`
	// HTTPListen is the address of the REST gateway.
	HTTPListen string `yaml:"http_listen"`
	// PublicListen is the public port of the load balancer in `vigil all`.
	PublicListen string `yaml:"public_listen"`
	// TrustedProxies are the proxies in front of the public port of `vigil
	// all` (a cloud load balancer, an ingress), as addresses or CIDR
	// prefixes, whose X-Forwarded-For and -Proto its load balancer believes
	// (lb's trusted_proxies); with proxy_protocol, the balancers that may
	// send the PROXY header instead, and no X-Forwarded-* field is believed.
	// Default none: the public port is the edge.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol makes the public port read a PROXY protocol header
	// (version 1 or 2) at the start of every connection, as a layer-4
	// balancer in front (AWS NLB, HAProxy in TCP mode) sends with the
	// client's address (lb's proxy_protocol). Only trusted_proxies may
	// send one, so it needs them; requests' own X-Forwarded-* fields are
	// then not believed.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// ForwardedProto "https" says the balancer in front terminates the
	// clients' TLS and passes the public port plain TCP (lb's
	// forwarded_proto): requests then go to the gateway with
	// X-Forwarded-Proto https (unless a trusted HTTP proxy's own is
	// believed). Without it, only a PROXY v2 header's SSL field (HAProxy's
	// send-proxy-v2-ssl) says so for a connection.
	ForwardedProto string `yaml:"forwarded_proto"`
	// DatabaseURL is the PostgreSQL connection string.
	DatabaseURL string `yaml:"database_url" redact:"url"`
	// AutoMigrate applies every component's migrations when a process starts.
	AutoMigrate bool  `yaml:"auto_migrate"`
	Kafka       Kafka `yaml:"kafka"`
	S3          S3    `yaml:"s3"`
	Redis       Redis `yaml:"redis"`
	// Peers maps a component name to the gRPC address that serves it; a component not
	// named here is reached on the process's own listener.
	Peers map[string]string `yaml:"peers"`
	// PeerTLS dials peers with TLS (system roots) instead of plaintext.
	PeerTLS bool `yaml:"peer_tls"`
	// InternalToken authenticates Vigil's services to each other. From the environment
	// only (VIGIL_INTERNAL_TOKEN); `vigil all` generates one per process when unset.
	InternalToken string `yaml:"internal_token" secret:"true"`
	// DataDir holds local state: the embedded object store's files, caches.
	DataDir string `yaml:"data_dir"`
	// LogLevel is debug, info, warn or error (the --log-level flag wins).
	LogLevel string `yaml:"log_level"`
	// MaxMessageBytes bounds one gRPC message, both ways (images travel in messages).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// ShutdownTimeout bounds the graceful drain of each server on stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Kafka names the brokers; none means the in-process broker.
type Kafka struct {
	Brokers []string `yaml:"brokers"`
}

// S3 names the object store; no endpoint means the embedded store under DataDir.
type S3 struct {
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	AccessKey string `yaml:"access_key" secret:"true"`
	SecretKey string `yaml:"secret_key" secret:"true"`
	UseTLS    bool   `yaml:"use_tls"`
	// Bucket is the one bucket Vigil stores its objects in.
	Bucket string `yaml:"bucket"`
}

// Redis names the Redis server; no address means in-process pub/sub and cache.
type Redis struct {
	Addr     string `yaml:"addr"`
	Password string `yaml:"password" secret:"true"`
	DB       int    `yaml:"db"`
}

// SetDefaults fills every unset core setting.
func (c *Core) SetDefaults() {
	c.GRPCListen = "127.0.0.1:9090"
	c.HTTPListen = "127.0.0.1:8081"
	c.PublicListen = ":8080"
	c.DatabaseURL = "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable"
	c.AutoMigrate = true
	c.DataDir = "./var"
	c.LogLevel = "info"
	c.S3.Region = "us-east-1"
	c.S3.Bucket = "vigil"
	c.ShutdownTimeout = 20 * time.Second
	c.MaxMessageBytes = 64 << 20
}

// Validate reports the first unusable core setting.
func (c *Core) Validate() error {
	var errs []error
	if c.GRPCListen == "" {
		errs = append(errs, errors.New("grpc_listen: required"))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("database_url: required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: required"))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	if c.S3.Endpoint != "" && (c.S3.AccessKey == "" || c.S3.SecretKey == "") {
		errs = append(errs, errors.New("s3: access_key and secret_key are required with an endpoint (VIGIL_S3_ACCESS_KEY, VIGIL_S3_SECRET_KEY)"))
	}
	if c.S3.Bucket == "" {
		errs = append(errs, errors.New("s3.bucket: required"))
	}
	if c.MaxMessageBytes <= 0 {
		errs = append(errs, errors.New("max_message_bytes: must be positive"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout: must be positive"))
	}
	for i, e := range c.TrustedProxies {
		if !validPrefixOrAddr(e) {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is neither an IP address nor a CIDR prefix", i, e))
		}
	}
	if c.ProxyProtocol && len(c.TrustedProxies) == 0 {
		errs = append(errs, errors.New("proxy_protocol: needs trusted_proxies, the addresses of the balancers that send the header (VIGIL_TRUSTED_PROXIES)"))
	}
	if c.ForwardedProto != "" && c.ForwardedProto != "https" {
		errs = append(errs, fmt.Errorf("forwarded_proto: %q is not https, its one value (VIGIL_FORWARDED_PROTO)", c.ForwardedProto))
	}
	for name, addr := range c.Peers {
		if addr == "" {
			errs = append(errs, fmt.Errorf("peers.%s: empty address", name))
		}
	}
	return errors.Join(errs...)
}

// Load reads the YAML file at path (none when empty), applies environment overrides
// from the process environment and validates the core settings.
func Load(path string) (*Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		data = b
	}
	return Parse(data, os.LookupEnv, os.Environ)
}

// Parse is Load over given YAML bytes and environment (for tests).
func Parse(data []byte, lookupEnv func(string) (string, bool), environ func() []string) (*Config, error) {
	c := &Config{
		sections: map[string]yaml.Node{},
		env:      lookupEnv,
		environ:  environ,
		decoded:  map[string]any{},
	}
	c.Core.SetDefaults()
	if len(bytes.TrimSpace(data)) > 0 {
		var doc map[string]yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config: %w", err)
		}
		coreKeys := yamlKeys(&c.Core)
		core := map[string]yaml.Node{}
		for k, v := range doc {
			if coreKeys[k] {
				core[k] = v
			} else {
				c.sections[k] = v
			}
		}
		if err := decodeStrict(core, &c.Core); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := rejectFileSecrets("", &c.Core, core); err != nil {
			return nil, err
		}
	}
	if err := applyEnv(EnvPrefix, &c.Core, c.env, c.environ); err != nil {
		return nil, err
	}
	if err := c.Core.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// Defaulter is implemented by section structs that fill their own defaults.
type Defaulter interface{ SetDefaults() }

// Validator is implemented by section structs that check themselves.
type Validator interface{ Validate() error }

// Section decodes the component section name into out (a pointer to the component's
// Config struct): out's SetDefaults first, then the file's values (unknown keys are an
// error), then VIGIL_<NAME>_<KEY> environment overrides, then out's Validate.
func (c *Config) Section(name string, out any) error {
	if d, ok := out.(Defaulter); ok {
		d.SetDefaults()
	}
	if node, ok := c.sections[name]; ok {
		if err := decodeNodeStrict(&node, out); err != nil {
			return fmt.Errorf("config section %s: %w", name, err)
		}
		var raw map[string]yaml.Node
		if err := node.Decode(&raw); err == nil {
			if err := rejectFileSecrets(name+".", out, raw); err != nil {
				return err
			}
		}
	}
	if err := applyEnv(EnvPrefix+envName(name)+"_", out, c.env, c.environ); err != nil {
		return err
	}
	if v, ok := out.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config section %s: %w", name, err)
		}
	}
	c.mu.Lock()
	c.decoded[name] = out
	c.mu.Unlock()
	return nil
}

// SectionOf decodes section name into a new T; a convenient fx provider body:
//
//	fx.Provide(func(c *config.Config) (Config, error) { return config.SectionOf[Config](c, "matcher") })
func SectionOf[T any](c *Config, name string) (T, error) {
	var v T
	err := c.Section(name, &v)
	return v, err
}

// Sections lists the names of the component sections present in the file.
func (c *Config) Sections() []string {
	names := make([]string, 0, len(c.sections))
	for k := range c.sections {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Effective returns the core settings and every section decoded so far, secrets
// redacted, for the startup log line.
func (c *Config) Effective() map[string]any {
	out := redact(&c.Core).(map[string]any)
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, v := range c.decoded {
		out[name] = redact(v)
	}
	return out
}

// validPrefixOrAddr reports whether s is an IP address or a CIDR prefix.
func validPrefixOrAddr(s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}
