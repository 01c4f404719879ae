package licensing

import (
	"errors"
	"time"
)

// Config is the "licensing" section of the configuration file.
type Config struct {
	// LicenseFile is the signed license file. Empty: the free tier applies. When set, the
	// file must exist and verify, or the process refuses to start.
	LicenseFile string `yaml:"license_file"`
	// PublicKeyFile is the PEM ed25519 public key licenses are verified with. Empty: the
	// key embedded in the binary.
	PublicKeyFile string `yaml:"public_key_file"`
	// WatchInterval is how often the license file is checked for changes (a change
	// reloads it, as SIGHUP does). 0 disables watching.
	WatchInterval time.Duration `yaml:"watch_interval"`
}

// SetDefaults fills every setting.
func (c *Config) SetDefaults() {
	c.WatchInterval = 10 * time.Second
}

// Validate reports unusable settings.
func (c *Config) Validate() error {
	if c.WatchInterval < 0 {
		return errors.New("watch_interval: must not be negative")
	}
	return nil
}
