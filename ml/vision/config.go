package vision

import (
	"fmt"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
)

// Config configures the Engine. Zero values take the defaults noted.
type Config struct {
	ORT ort.Config `yaml:"ort"`
	// ModelDir, when set, reads the model files from this folder instead of
	// the copies embedded in the binary.
	ModelDir string         `yaml:"model_dir"`
	Limits   imgproc.Limits `yaml:"limits"`
	Face     FaceOptions    `yaml:"face"`
	Body     BodyOptions    `yaml:"body"`
	// MaxBatch caps how many faces go into one Run of a batched model.
	// Default 16.
	MaxBatch int `yaml:"max_batch"`
}

// FaceOptions tune the face detector. A request may override them.
type FaceOptions struct {
	// ScoreThreshold drops detections below it. Default 0.6 (YuNet's
	// recommended value; verified on the test photos).
	ScoreThreshold float64 `yaml:"score_threshold"`
	// NMSIoU is the overlap above which the weaker of two boxes is dropped.
	// Default 0.3.
	NMSIoU float64 `yaml:"nms_iou"`
	// MinFaceSize drops faces whose shorter box side is below this many
	// pixels. Default 0 (keep all).
	MinFaceSize float64 `yaml:"min_face_size"`
}

// BodyOptions tune the body detector.
type BodyOptions struct {
	// ScoreThreshold on obj·cls of the person class. Default 0.4.
	ScoreThreshold float64 `yaml:"score_threshold"`
	// NMSIoU default 0.45 (YOLOX's).
	NMSIoU float64 `yaml:"nms_iou"`
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	c.ORT = c.ORT.WithDefaults()
	c.Limits = c.Limits.WithDefaults()
	c.Face = c.Face.withDefaults()
	if c.Body.ScoreThreshold <= 0 {
		c.Body.ScoreThreshold = 0.4
	}
	if c.Body.NMSIoU <= 0 {
		c.Body.NMSIoU = 0.45
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 16
	}
	return c
}

func (f FaceOptions) withDefaults() FaceOptions {
	if f.ScoreThreshold <= 0 {
		f.ScoreThreshold = 0.6
	}
	if f.NMSIoU <= 0 {
		f.NMSIoU = 0.3
	}
	return f
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if err := c.ORT.Validate(); err != nil {
		return err
	}
	if c.Face.ScoreThreshold < 0 || c.Face.ScoreThreshold > 1 {
		return fmt.Errorf("face.score_threshold %v: want 0..1", c.Face.ScoreThreshold)
	}
	if c.Body.ScoreThreshold < 0 || c.Body.ScoreThreshold > 1 {
		return fmt.Errorf("body.score_threshold %v: want 0..1", c.Body.ScoreThreshold)
	}
	if c.Face.MinFaceSize < 0 {
		return fmt.Errorf("face.min_face_size %v: must not be negative", c.Face.MinFaceSize)
	}
	return nil
}
