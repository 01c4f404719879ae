// Package models embeds the ONNX models Vigil ships, so that one binary runs
// with nothing to download but the ONNX Runtime library. Where each file comes
// from, its license and its pre/post-processing are in SOURCES.md; the license
// texts are in LICENSES/.
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed *.onnx
var embedded embed.FS

// File names of the shipped models.
const (
	FaceDetector  = "yunet_s_dynamic.onnx"
	FaceLandmarks = "peppa_slim_160_latest.onnx"
	FaceTemplate  = "mobilefacenet_128d_dynbatch.onnx"
	AgeGender     = "face_api_age_gender_112.onnx"
	Gender        = "imdb_gender_mini_xception_21-0.95.onnx"
	Emotion       = "fer2013_mini_xception_102-0.66.onnx"
	Mask          = "ultraface_RFB-640-masked_face-v2.onnx"
	Liveness      = "MiniFASNetV2.onnx"
	BodyDetector  = "yolox_nano_416x416.onnx"
)

// Source reads models: from dir when it is set (to try other model files
// without rebuilding), else from the copies embedded in the binary.
type Source struct {
	Dir string
}

// Read returns the bytes of the named model.
func (s Source) Read(name string) ([]byte, error) {
	if s.Dir != "" {
		b, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("read model %s: %w", name, err)
		}
		return b, nil
	}
	b, err := fs.ReadFile(embedded, name)
	if err != nil {
		return nil, fmt.Errorf("read embedded model %s: %w", name, err)
	}
	return b, nil
}

// Digest is the first 12 hex digits of the SHA-256 of a model's bytes. It is
// part of a template's model version, so templates from different weights
// are never compared even when a file keeps its name.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}
