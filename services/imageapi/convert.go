package imageapi

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/vision"
)

var unitFromProto = map[imageapiv1.Unit]vision.Unit{
	imageapiv1.Unit_UNIT_FACE_DETECTOR:      vision.UnitFaceDetector,
	imageapiv1.Unit_UNIT_FACE_FITTER:        vision.UnitFaceFitter,
	imageapiv1.Unit_UNIT_TEMPLATE_EXTRACTOR: vision.UnitTemplateExtractor,
	imageapiv1.Unit_UNIT_AGE:                vision.UnitAge,
	imageapiv1.Unit_UNIT_GENDER:             vision.UnitGender,
	imageapiv1.Unit_UNIT_EMOTION:            vision.UnitEmotion,
	imageapiv1.Unit_UNIT_MASK:               vision.UnitMask,
	imageapiv1.Unit_UNIT_LIVENESS:           vision.UnitLiveness,
	imageapiv1.Unit_UNIT_QUALITY:            vision.UnitQuality,
	imageapiv1.Unit_UNIT_BODY_DETECTOR:      vision.UnitBodyDetector,
}

func unitsFromProto(units []imageapiv1.Unit) (vision.Units, error) {
	if len(units) == 0 {
		return nil, invalid("units", "at least one unit is required")
	}
	out := vision.Units{}
	for i, u := range units {
		v, ok := unitFromProto[u]
		if !ok {
			return nil, invalid(fmt.Sprintf("units[%d]", i), "unknown unit %v", u)
		}
		out[v] = true
	}
	return out, nil
}

// given pairs a domain object built from a request object with the request
// object itself, so attributes the client sent and no unit recomputed are
// returned unchanged.
type given struct {
	obj  *vision.Object
	orig *imageapiv1.ImageObject
}

// objectsFromProto converts request objects (normalised) to domain objects
// (pixels of a w x h image). field is the request field holding them.
func objectsFromProto(field string, in []*imageapiv1.ImageObject, w, h int) ([]given, error) {
	out := make([]given, 0, len(in))
	for i, o := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		var class vision.Class
		switch o.GetObjectClass() {
		case imageapiv1.ObjectClass_OBJECT_CLASS_FACE:
			class = vision.ClassFace
		case imageapiv1.ObjectClass_OBJECT_CLASS_BODY:
			class = vision.ClassBody
		default:
			return nil, invalid(f+".object_class", "must be face or body")
		}
		b := o.GetBox()
		if b == nil {
			return nil, invalid(f+".box", "required")
		}
		if b.GetX1() < -0.5 || b.GetY1() < -0.5 || b.GetX2() > 1.5 || b.GetY2() > 1.5 {
			return nil, invalid(f+".box", "coordinates are normalised to the image (0..1)")
		}
		obj := &vision.Object{
			ID: o.GetId(), Class: class, Confidence: float64(o.GetConfidence()),
			Box:         vision.PixelBox(geom.Box{X1: float64(b.GetX1()), Y1: float64(b.GetY1()), X2: float64(b.GetX2()), Y2: float64(b.GetY2())}, w, h),
			Keypoints:   pointsFromProto(o.GetKeypoints(), w, h),
			Landmarks68: pointsFromProto(o.GetDensePoints(), w, h),
		}
		out = append(out, given{obj: obj, orig: o})
	}
	return out, nil
}

func pointsFromProto(ps []*commonv1.Point, w, h int) []geom.Point {
	if len(ps) == 0 {
		return nil
	}
	out := make([]geom.Point, len(ps))
	for i, p := range ps {
		out[i] = geom.Point{X: float64(p.GetX()) * float64(w), Y: float64(p.GetY()) * float64(h)}
	}
	return out
}

// sampleToProto converts a result. Objects that came from the request start
// from a copy of the request object, so attributes the client sent survive.
func sampleToProto(s *vision.Sample, origins map[*vision.Object]*imageapiv1.ImageObject) *imageapiv1.Sample {
	out := &imageapiv1.Sample{Width: int32(s.Width), Height: int32(s.Height)}
	for _, o := range s.Objects {
		var p *imageapiv1.ImageObject
		if orig, ok := origins[o]; ok {
			p = proto.Clone(orig).(*imageapiv1.ImageObject)
		} else {
			p = &imageapiv1.ImageObject{}
		}
		fillObject(p, s, o)
		out.Objects = append(out.Objects, p)
	}
	return out
}

func fillObject(p *imageapiv1.ImageObject, s *vision.Sample, o *vision.Object) {
	p.Id = o.ID
	p.ObjectClass = imageapiv1.ObjectClass_OBJECT_CLASS_FACE
	if o.Class == vision.ClassBody {
		p.ObjectClass = imageapiv1.ObjectClass_OBJECT_CLASS_BODY
	}
	p.Confidence = float32(o.Confidence)
	nb := s.NormBox(o.Box)
	p.Box = &commonv1.Box{X1: float32(nb.X1), Y1: float32(nb.Y1), X2: float32(nb.X2), Y2: float32(nb.Y2)}
	if o.Keypoints != nil {
		p.Keypoints = pointsToProto(s, o.Keypoints)
	}
	if o.Landmarks68 != nil {
		p.DensePoints = pointsToProto(s, o.Landmarks68)
	}
	if o.Fitter != nil {
		p.FitterPoints = p.FitterPoints[:0]
		for _, np := range o.Fitter {
			q := s.NormPoint(np.Point)
			p.FitterPoints = append(p.FitterPoints, &imageapiv1.NamedPoint{Name: np.Name, Point: &commonv1.Point{X: float32(q.X), Y: float32(q.Y)}})
		}
	}
	if o.Pose != nil {
		p.HeadPose = &imageapiv1.HeadPose{Yaw: float32(o.Pose.Yaw), Pitch: float32(o.Pose.Pitch), Roll: float32(o.Pose.Roll)}
	}
	if t := o.Template; t != nil {
		p.Template = &commonv1.Template{Vector: t.Vector, Model: TemplateModelID(t)}
	}
	if o.Age != nil {
		p.Age = &imageapiv1.AgeEstimate{Years: float32(o.Age.Years)}
	}
	if g := o.Gender; g != nil {
		v := imageapiv1.Gender_GENDER_FEMALE
		if g.Value == vision.GenderMale {
			v = imageapiv1.Gender_GENDER_MALE
		}
		p.Gender = &imageapiv1.GenderEstimate{Gender: v, Confidence: float32(g.Confidence)}
	}
	if o.Emotions != nil {
		p.Emotions = p.Emotions[:0]
		for _, e := range o.Emotions {
			p.Emotions = append(p.Emotions, &imageapiv1.EmotionScore{Emotion: imageapiv1.Emotion(e.Class), Confidence: float32(e.Confidence)})
		}
	}
	if m := o.Mask; m != nil {
		p.Mask = &imageapiv1.MaskEstimate{Masked: m.Masked, Confidence: float32(m.Confidence)}
	}
	if l := o.Liveness; l != nil {
		p.Liveness = &imageapiv1.LivenessEstimate{Real: l.Real, Confidence: float32(l.Confidence), RealScore: float32(l.RealScore)}
	}
	if q := o.Quality; q != nil {
		p.Quality = &imageapiv1.QualityAssessment{
			Total: float32(q.Total), Size: float32(q.Size), Sharpness: float32(q.Sharpness),
			Exposure: float32(q.Exposure), Contrast: float32(q.Contrast), Pose: float32(q.Pose),
			DetectorConfidence: float32(q.Confidence),
		}
	}
}

func pointsToProto(s *vision.Sample, ps []geom.Point) []*commonv1.Point {
	out := make([]*commonv1.Point, len(ps))
	for i, p := range ps {
		q := s.NormPoint(p)
		out[i] = &commonv1.Point{X: float32(q.X), Y: float32(q.Y)}
	}
	return out
}

// TemplateModelID is the vigil.common.v1.Template model string of a
// template: "name@version", e.g. "mobilefacenet-128d@1+68a6d4992ecf".
func TemplateModelID(t *vision.Template) string { return t.Model + "@" + t.Version }
