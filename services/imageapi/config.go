package imageapi

import (
	"fmt"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/ml/vision"
)

// Config is the "imageapi" section of the configuration file: the vision
// engine's settings plus the service's own. Every key can be overridden by
// VIGIL_IMAGEAPI_<KEY> (e.g. VIGIL_IMAGEAPI_ORT_POOL_SIZE=1).
//
//	imageapi:
//	  ort: {provider: auto, pool_size: 2, intra_op_threads: 1, library_path: ""}
//	  model_dir: ""            # empty: the models embedded in the binary
//	  limits: {max_bytes: 20971520, max_pixels: 40000000, max_side: 16384}
//	  face: {score_threshold: 0.6, nms_iou: 0.3, min_face_size: 0}
//	  body: {score_threshold: 0.4, nms_iou: 0.45}
//	  max_batch: 16            # faces per Run of a batched model
//	  max_samples: 16          # images per Process call
type Config struct {
	ORT        ort.Config         `yaml:"ort"`
	ModelDir   string             `yaml:"model_dir"`
	Limits     imgproc.Limits     `yaml:"limits"`
	Face       vision.FaceOptions `yaml:"face"`
	Body       vision.BodyOptions `yaml:"body"`
	MaxBatch   int                `yaml:"max_batch"`
	MaxSamples int                `yaml:"max_samples"`
}

// SetDefaults fills the defaults.
func (c *Config) SetDefaults() {
	v := vision.Config{}.WithDefaults()
	c.ORT, c.Limits, c.Face, c.Body, c.MaxBatch = v.ORT, v.Limits, v.Face, v.Body, v.MaxBatch
	c.MaxSamples = 16
}

// Validate checks the settings.
func (c *Config) Validate() error {
	if c.MaxSamples < 1 {
		return fmt.Errorf("max_samples %d: want at least 1", c.MaxSamples)
	}
	return c.Vision().Validate()
}

// Vision is the engine's part of the configuration.
func (c *Config) Vision() vision.Config {
	return vision.Config{ORT: c.ORT, ModelDir: c.ModelDir, Limits: c.Limits, Face: c.Face, Body: c.Body, MaxBatch: c.MaxBatch}
}
