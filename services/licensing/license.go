package licensing

import (
	"fmt"
	"slices"
	"time"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// Known feature names. A license may carry others (a newer signer's), which this build
// simply never asks about.
const (
	FeatureActivitySearch = "activity-search"
	FeatureANNIndex       = "ann-index"
	// All enables every unit (in image_api_units) or every feature (in features).
	All = "*"
)

// ImageAPIUnits are the unit names vigil.imageapi.v1 checks the license for.
var ImageAPIUnits = []string{
	"face-detector", "face-fitter", "template-extractor", "age-estimator", "gender-estimator",
	"emotion-estimator", "mask-estimator", "liveness-estimator", "quality-assessment-estimator",
	"body-detector",
}

// Features are the feature names this build knows.
var Features = []string{FeatureActivitySearch, FeatureANNIndex}

// formatVersion is the version of the signed payload's schema; a verifier refuses others.
const formatVersion = 1

// Limits are the counted limits of a license; 0 means unlimited.
type Limits struct {
	MaxPersons int64 `json:"max_persons" yaml:"max_persons"`
	MaxAgents  int64 `json:"max_agents" yaml:"max_agents"`
	MaxCameras int64 `json:"max_cameras" yaml:"max_cameras"`
}

// License is the content of a license: what a signed file carries, or the free tier.
type License struct {
	// Format is the payload schema version (1).
	Format    int    `json:"format"`
	LicenseID string `json:"license_id"`
	Licensee  string `json:"licensee"`
	// KeyID is the fingerprint of the key that signed the license.
	KeyID  string    `json:"key_id"`
	Issued time.Time `json:"issued"`
	// Expires is nil for a perpetual license.
	Expires       *time.Time `json:"expires,omitempty"`
	Limits        Limits     `json:"limits"`
	ImageAPIUnits []string   `json:"image_api_units"`
	Features      []string   `json:"features"`
}

// Free-tier limits, in force when no license file is configured (and after a license
// expires while running). Documented in README.md.
const (
	FreeTierMaxPersons = 1000
	FreeTierMaxAgents  = 2
	FreeTierMaxCameras = 4
)

// FreeTier is the license in force without a license file: 1,000 persons, 2 agents,
// 4 cameras, every Image API unit, activity search, no ANN index.
func FreeTier() *License {
	return &License{
		Format:        formatVersion,
		LicenseID:     "free-tier",
		Licensee:      "Free tier",
		Limits:        Limits{MaxPersons: FreeTierMaxPersons, MaxAgents: FreeTierMaxAgents, MaxCameras: FreeTierMaxCameras},
		ImageAPIUnits: []string{All},
		Features:      []string{FeatureActivitySearch},
	}
}

// ExpiredAt reports whether the license has expired at now.
func (l *License) ExpiredAt(now time.Time) bool {
	return l.Expires != nil && !now.Before(*l.Expires)
}

// UnitEnabled reports whether the license enables the Image API unit.
func (l *License) UnitEnabled(unit string) bool {
	return slices.Contains(l.ImageAPIUnits, All) || slices.Contains(l.ImageAPIUnits, unit)
}

// FeatureEnabled reports whether the license enables the feature.
func (l *License) FeatureEnabled(feature string) bool {
	return slices.Contains(l.Features, All) || slices.Contains(l.Features, feature)
}

// Limit returns the limit's name and value (0 = unlimited) for a counted resource.
func (l *License) Limit(r licensingv1.Resource) (name string, limit int64, err error) {
	switch r {
	case licensingv1.Resource_RESOURCE_PERSONS:
		return "max_persons", l.Limits.MaxPersons, nil
	case licensingv1.Resource_RESOURCE_AGENTS:
		return "max_agents", l.Limits.MaxAgents, nil
	case licensingv1.Resource_RESOURCE_CAMERAS:
		return "max_cameras", l.Limits.MaxCameras, nil
	default:
		return "", 0, fmt.Errorf("%w: resource %v", ErrInvalidArgument, r)
	}
}

// Resources lists the counted resources, in display order.
var Resources = []licensingv1.Resource{
	licensingv1.Resource_RESOURCE_PERSONS,
	licensingv1.Resource_RESOURCE_AGENTS,
	licensingv1.Resource_RESOURCE_CAMERAS,
}

// validate checks the content a signer or verifier must refuse.
func (l *License) validate() error {
	if l.Format != formatVersion {
		return fmt.Errorf("unsupported license format %d (this build reads format %d)", l.Format, formatVersion)
	}
	if l.LicenseID == "" {
		return fmt.Errorf("license_id: required")
	}
	if l.Licensee == "" {
		return fmt.Errorf("licensee: required")
	}
	if l.Issued.IsZero() {
		return fmt.Errorf("issued: required")
	}
	if l.Expires != nil && !l.Expires.After(l.Issued) {
		return fmt.Errorf("expires: %s is not after issued %s", l.Expires.Format(time.RFC3339), l.Issued.Format(time.RFC3339))
	}
	for name, v := range map[string]int64{"max_persons": l.Limits.MaxPersons, "max_agents": l.Limits.MaxAgents, "max_cameras": l.Limits.MaxCameras} {
		if v < 0 {
			return fmt.Errorf("limits.%s: %d is negative (0 means unlimited)", name, v)
		}
	}
	for _, u := range l.ImageAPIUnits {
		if !validName(u) {
			return fmt.Errorf("image_api_units: %q is not a unit name (lowercase letters, digits and '-', or \"*\")", u)
		}
	}
	for _, f := range l.Features {
		if !validName(f) {
			return fmt.Errorf("features: %q is not a feature name (lowercase letters, digits and '-', or \"*\")", f)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == All {
		return true
	}
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}
