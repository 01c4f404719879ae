package vision

import (
	"fmt"
	"slices"
	"strings"
)

// Unit is one estimator of the Image API.
type Unit string

// The units, named as in the API.
const (
	UnitFaceDetector      Unit = "face_detector"
	UnitFaceFitter        Unit = "face_fitter"
	UnitTemplateExtractor Unit = "template_extractor"
	UnitAge               Unit = "age"
	UnitGender            Unit = "gender"
	UnitEmotion           Unit = "emotion"
	UnitMask              Unit = "mask"
	UnitLiveness          Unit = "liveness"
	UnitQuality           Unit = "quality"
	UnitBodyDetector      Unit = "body_detector"
)

// AllUnits lists every unit in the order Process runs them.
var AllUnits = []Unit{
	UnitFaceDetector, UnitFaceFitter, UnitTemplateExtractor, UnitAge, UnitGender,
	UnitEmotion, UnitMask, UnitLiveness, UnitQuality, UnitBodyDetector,
}

// faceUnits are the units that work on face objects.
var faceUnits = []Unit{
	UnitFaceFitter, UnitTemplateExtractor, UnitAge, UnitGender,
	UnitEmotion, UnitMask, UnitLiveness, UnitQuality,
}

// Units is a set of units.
type Units map[Unit]bool

// NewUnits builds a set.
func NewUnits(us ...Unit) Units {
	s := Units{}
	for _, u := range us {
		s[u] = true
	}
	return s
}

// ParseUnits reads a comma-separated list such as "face_detector,age".
func ParseUnits(list string) (Units, error) {
	s := Units{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		u := Unit(f)
		if !slices.Contains(AllUnits, u) {
			return nil, fmt.Errorf("%w: unknown unit %q", ErrInvalidRequest, f)
		}
		s[u] = true
	}
	return s, nil
}

// Has reports whether u is in the set.
func (s Units) Has(u Unit) bool { return s[u] }

// anyFace reports whether a unit that works on faces is in the set.
func (s Units) anyFace() bool {
	for _, u := range faceUnits {
		if s[u] {
			return true
		}
	}
	return false
}

// List returns the set in AllUnits order.
func (s Units) List() []Unit {
	var out []Unit
	for _, u := range AllUnits {
		if s[u] {
			out = append(out, u)
		}
	}
	return out
}
