package vision

import (
	"github.com/vigilhq/vigil/ml/geom"
)

// Class is what an object is.
type Class int

const (
	// ClassFace is a human face.
	ClassFace Class = iota + 1
	// ClassBody is a whole person.
	ClassBody
)

func (c Class) String() string {
	switch c {
	case ClassFace:
		return "face"
	case ClassBody:
		return "body"
	default:
		return "unknown"
	}
}

// Sample is one image and the objects found on it or given with it.
type Sample struct {
	Width, Height int
	Objects       []*Object
}

// Object is one face or body. Box and points are in pixels of the upright
// image; Sample.Normalize gives the 0..1 form the API returns.
type Object struct {
	ID         string
	Class      Class
	Confidence float64 // detector confidence, 0..1 (1 for objects given by the client)
	Box        geom.Box

	// Keypoints are the detector's 5 points: right eye (image left), left
	// eye, nose tip, right and left mouth corners.
	Keypoints []geom.Point
	// Landmarks68 are the fitter's dense iBUG-68 points.
	Landmarks68 []geom.Point
	// Fitter are the 21 named anthropometric points derived from Landmarks68.
	Fitter []NamedPoint
	// Pose is the head orientation from the fitter's points.
	Pose *geom.Pose

	Template *Template
	Age      *Age
	Gender   *Gender
	Emotions []Emotion // all classes, highest score first
	Mask     *Mask
	Liveness *Liveness
	Quality  *Quality
}

// NamedPoint is a landmark with its anatomical name.
type NamedPoint struct {
	Name string
	geom.Point
}

// Template is a face embedding. Templates are comparable only when Model and
// Version are equal.
type Template struct {
	Model   string
	Version string
	Vector  []float32 // L2-normalised
}

// Age is an estimate in years.
type Age struct {
	Years float64
}

// GenderValue is the estimated gender.
type GenderValue int

const (
	// GenderFemale is a woman's face.
	GenderFemale GenderValue = iota + 1
	// GenderMale is a man's face.
	GenderMale
)

// Gender is the estimate with the probability of the value given.
type Gender struct {
	Value      GenderValue
	Confidence float64 // probability of Value, 0.5..1
}

// EmotionClass names one of the seven FER2013 emotions.
type EmotionClass int

// The FER2013 classes, in the model's output order.
const (
	EmotionAngry EmotionClass = iota + 1
	EmotionDisgust
	EmotionFear
	EmotionHappy
	EmotionSad
	EmotionSurprise
	EmotionNeutral
)

// Emotion is one class with its probability.
type Emotion struct {
	Class      EmotionClass
	Confidence float64
}

// Mask says whether the face wears a mask.
type Mask struct {
	Masked     bool
	Confidence float64 // probability of Masked's value
}

// Liveness says whether the face is a live person or a presentation
// (photo, screen).
type Liveness struct {
	Real       bool
	Confidence float64 // probability of Real's value
	RealScore  float64 // p(real), 0..1, for callers that choose their own threshold
}

// Quality is a 0..1 score with the parts it is made of (see quality.go).
type Quality struct {
	Total      float64
	Size       float64
	Sharpness  float64
	Exposure   float64
	Contrast   float64
	Pose       float64
	Confidence float64
}

// NormBox returns b divided by the image size, so 0..1 on both axes.
func (s *Sample) NormBox(b geom.Box) geom.Box {
	w, h := float64(s.Width), float64(s.Height)
	return geom.Box{X1: b.X1 / w, Y1: b.Y1 / h, X2: b.X2 / w, Y2: b.Y2 / h}
}

// NormPoint returns p divided by the image size.
func (s *Sample) NormPoint(p geom.Point) geom.Point {
	return geom.Point{X: p.X / float64(s.Width), Y: p.Y / float64(s.Height)}
}

// PixelBox converts a normalised box back to pixels.
func PixelBox(b geom.Box, w, h int) geom.Box {
	fw, fh := float64(w), float64(h)
	return geom.Box{X1: b.X1 * fw, Y1: b.Y1 * fh, X2: b.X2 * fw, Y2: b.Y2 * fh}
}
