package backend

import (
	"errors"
	"time"
)

// Config is the "backend" section of the configuration file.
type Config struct {
	// SessionTTL is how long a login session lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// BootstrapEmail is the email of the first admin, created with the first workspace on
	// the first start (when no user exists). Its generated password is printed once.
	BootstrapEmail string `yaml:"bootstrap_email"`
	// BootstrapWorkspace names that first workspace.
	BootstrapWorkspace string `yaml:"bootstrap_workspace"`
	// DefaultThreshold is the similarity threshold for workspaces and groups without one.
	DefaultThreshold float32 `yaml:"default_threshold"`
	// PeerTimeout bounds each call to the Image API, the matcher and licensing.
	PeerTimeout time.Duration `yaml:"peer_timeout"`
	// Bucket-relative prefix of person photos in the object store.
	PhotoPrefix string `yaml:"photo_prefix"`
	// PersonCacheTTL is how long GetPerson's cached person card lives (0 disables the
	// cache). Every change invalidates the card, so the TTL only bounds staleness should an
	// invalidation be lost (Redis unreachable after a commit).
	PersonCacheTTL time.Duration `yaml:"person_cache_ttl"`
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	c.SessionTTL = 12 * time.Hour
	c.BootstrapEmail = "admin@vigil.local"
	c.BootstrapWorkspace = "Default"
	c.DefaultThreshold = 0.6
	c.PeerTimeout = 30 * time.Second
	c.PhotoPrefix = "persons"
	c.PersonCacheTTL = time.Minute
}

// Validate checks the values.
func (c *Config) Validate() error {
	switch {
	case c.SessionTTL < time.Minute:
		return errors.New("backend.session_ttl: at least 1m")
	case checkEmail("backend.bootstrap_email", c.BootstrapEmail) != nil:
		return errors.New("backend.bootstrap_email: not an email address")
	case c.DefaultThreshold <= 0 || c.DefaultThreshold > 1:
		return errors.New("backend.default_threshold: within (0, 1]")
	case c.PeerTimeout <= 0:
		return errors.New("backend.peer_timeout: must be positive")
	case c.PersonCacheTTL < 0:
		return errors.New("backend.person_cache_ttl: 0 (off) or positive")
	}
	return nil
}
