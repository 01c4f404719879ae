package imageapi

import (
	"context"

	"github.com/vigilhq/vigil/ml/vision"
	"github.com/vigilhq/vigil/platform/rpc"
)

// UnitChecker is how the licensing component refuses units the license does
// not enable. Module provides the licensing client (platform/licensecheck
// Checker.CheckUnit): nil when allowed, else an error carrying
// PERMISSION_DENIED (or UNAVAILABLE when licensing cannot be asked), which the
// server returns as is. NewServer also accepts nil, for tests of the server
// alone.
type UnitChecker interface {
	CheckUnit(ctx context.Context, workspaceID, unit string) error
}

// LicenseUnitName is how the license names each unit (the names listed in
// vigil.imageapi.v1's file comment).
var LicenseUnitName = map[vision.Unit]string{
	vision.UnitFaceDetector:      "face-detector",
	vision.UnitFaceFitter:        "face-fitter",
	vision.UnitTemplateExtractor: "template-extractor",
	vision.UnitAge:               "age-estimator",
	vision.UnitGender:            "gender-estimator",
	vision.UnitEmotion:           "emotion-estimator",
	vision.UnitMask:              "mask-estimator",
	vision.UnitLiveness:          "liveness-estimator",
	vision.UnitQuality:           "quality-assessment-estimator",
	vision.UnitBodyDetector:      "body-detector",
}

// checkLicense asks the UnitChecker about every requested unit, and about
// the face detector when it will run implicitly because no faces were given.
func (s *Server) checkLicense(ctx context.Context, units vision.Units, implicitDetector bool) error {
	if s.units == nil {
		return nil
	}
	workspace := ""
	if p := rpc.PrincipalFrom(ctx); p != nil {
		workspace = p.WorkspaceID
	}
	list := units.List()
	if implicitDetector && !units.Has(vision.UnitFaceDetector) {
		list = append(list, vision.UnitFaceDetector)
	}
	for _, u := range list {
		if err := s.units.CheckUnit(ctx, workspace, LicenseUnitName[u]); err != nil {
			return err
		}
	}
	return nil
}
