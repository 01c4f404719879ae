package imageapi

import (
	"fmt"

	"github.com/vigilhq/vigil/ml/vision"
)

// Config is the "imageapi" section of the configuration file. Its fields are
// the vision engine's (ORT runtime, model folder, image limits, detector
// options, batch size) plus the service's own.
//
//	imageapi:
//	  ort: {provider: auto, pool_size: 2, intra_op_threads: 1, library_path: ""}
//	  limits: {max_bytes: 20971520, max_pixels: 40000000}
//	  face: {score_threshold: 0.6, min_face_size: 0}
//	  max_samples: 16
type Config struct {
	vision.Config `yaml:",inline"`
	// MaxSamples bounds the images of one Process call. Default 16.
	MaxSamples int `yaml:"max_samples"`
}

// SetDefaults fills the defaults.
func (c *Config) SetDefaults() {
	c.Config = c.Config.WithDefaults()
	c.MaxSamples = 16
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.MaxSamples < 1 {
		return fmt.Errorf("max_samples %d: want at least 1", c.MaxSamples)
	}
	return c.Config.Validate()
}
