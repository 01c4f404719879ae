package gateway

import (
	"errors"
	"time"
)

// Config is the gateway's section of the config file ("gateway:").
type Config struct {
	// MaxBodyBytes refuses larger request bodies with 400 (base64 images are the big ones).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout bounds how long a client may take to send its headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AccessLog logs one line per HTTP request.
	AccessLog bool `yaml:"access_log"`
	// WebSocketOrigins are the host patterns (path.Match syntax, e.g. "*.example.com")
	// of other origins whose pages may open the notifications WebSocket; the gateway's
	// own origin is always allowed.
	WebSocketOrigins []string `yaml:"websocket_origins"`
}

// SetDefaults implements config.Defaulter.
func (c *Config) SetDefaults() {
	c.MaxBodyBytes = 32 << 20
	c.ReadHeaderTimeout = 10 * time.Second
	c.IdleTimeout = 2 * time.Minute
	c.AccessLog = true
}

// Validate implements config.Validator.
func (c *Config) Validate() error {
	if c.MaxBodyBytes <= 0 {
		return errors.New("max_body_bytes: must be positive")
	}
	if c.ReadHeaderTimeout <= 0 {
		return errors.New("read_header_timeout: must be positive")
	}
	return nil
}
