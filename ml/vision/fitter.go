package vision

import (
	"context"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// faceFitter runs Peppa slim-160 for 68 iBUG landmarks, derives the 21
// anthropometric points and the head pose.
//
// Preprocessing (models/SOURCES.md §2): the face box enlarged by 20% on every
// side (1.4x), resized to 160x160, BGR, (x − 127)/127. Output values 0..135
// are 68 (x, y) pairs normalised to the crop; 136..142 are auxiliary heads we
// do not use (pose comes from PnP on the points, as upstream does).
type faceFitter struct {
	sess *ort.Session
}

const fitterSize = 160

func newFaceFitter(rt *ort.Runtime, src models.Source) (*faceFitter, error) {
	b, err := src.Read(models.FaceLandmarks)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("peppa_slim_160", b, []string{"input1"}, []string{"output1"})
	if err != nil {
		return nil, err
	}
	return &faceFitter{sess: s}, nil
}

func (f *faceFitter) session() *ort.Session { return f.sess }

// fit adds Landmarks68, Fitter points and Pose to each face. The model has a
// fixed batch of 1, so faces run one after another.
func (f *faceFitter) fit(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	for _, face := range faces {
		crop := face.Box.Scale(1.4, 1.4)
		data := make([]float32, 3*fitterSize*fitterSize)
		img.SampleInto(data, fitterSize, fitterSize,
			imgproc.ResizeMap(crop.X1, crop.Y1, crop.W(), crop.H(), fitterSize, fitterSize),
			imgproc.BGRPlanes, imgproc.Uniform(127, 1.0/127), imgproc.Border{})
		out, err := f.sess.Run(ctx, ort.Tensor{Shape: []int64{1, 3, fitterSize, fitterSize}, Data: data})
		if err != nil {
			return err
		}
		v := out[0].Data
		pts := make([]geom.Point, 68)
		for k := range 68 {
			pts[k] = geom.Point{X: crop.X1 + float64(v[2*k])*crop.W(), Y: crop.Y1 + float64(v[2*k+1])*crop.H()}
		}
		face.Landmarks68 = pts
		face.Fitter = anthropometric(pts)
		if pose, err := geom.EstimatePose(meanFace3D, pick(pts, meanFaceIndex)); err == nil {
			face.Pose = &pose
		}
	}
	return nil
}

// fivePoints derives YuNet-order 5 points (eye centres, nose tip, mouth
// corners) from 68 landmarks, for faces given without detector points.
func fivePoints(p []geom.Point) []geom.Point {
	return []geom.Point{mean(p[36:42]), mean(p[42:48]), p[30], p[48], p[54]}
}

func mean(ps []geom.Point) geom.Point {
	var m geom.Point
	for _, p := range ps {
		m.X += p.X
		m.Y += p.Y
	}
	n := float64(len(ps))
	return geom.Point{X: m.X / n, Y: m.Y / n}
}

func pick(ps []geom.Point, idx []int) []geom.Point {
	out := make([]geom.Point, len(idx))
	for i, k := range idx {
		out[i] = ps[k]
	}
	return out
}
