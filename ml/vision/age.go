package vision

import (
	"context"
	"image"
	"math"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// ageEstimator runs face-api's AgeGenderNet (converted; dynamic batch). Only
// its age head is used; gender comes from genderEstimator.
//
// Crop (models/SOURCES.md §8, face-api's own recipe, verified to reproduce
// face-api exactly): the 68 landmarks' bounding box enlarged by 10% of its
// size on each side, clipped to the image, x, y, width and height floored;
// that region padded with black to a square (padding split equally, odd
// pixel after), resized to 112x112 with TensorFlow's legacy bilinear mapping
// (src = dst·side/112). RGB, raw 0..255 (the graph normalises).
type ageEstimator struct {
	sess     *ort.Session
	maxBatch int
}

const ageSize = 112

func newAgeEstimator(rt *ort.Runtime, src models.Source, maxBatch int) (*ageEstimator, error) {
	b, err := src.Read(models.AgeGender)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("face_api_age_gender", b, []string{"input"}, []string{"age", "gender_probs"})
	if err != nil {
		return nil, err
	}
	return &ageEstimator{sess: s, maxBatch: maxBatch}, nil
}

func (a *ageEstimator) session() *ort.Session { return a.sess }

// ageCrop writes the 112x112 input of one face into dst.
func ageCrop(dst []float32, img *imgproc.RGB, p68 []geom.Point) {
	bb := geom.BoundingBox(p68)
	w, h := bb.W(), bb.H()
	x1 := math.Max(0, bb.X1-0.1*w)
	y1 := math.Max(0, bb.Y1-0.1*h)
	x2 := math.Min(float64(img.W), bb.X1-0.1*w+1.2*w)
	y2 := math.Min(float64(img.H), bb.Y1-0.1*h+1.2*h)
	rx, ry := int(math.Floor(x1)), int(math.Floor(y1))
	rw, rh := int(math.Floor(x2-x1)), int(math.Floor(y2-y1))
	rw, rh = max(rw, 1), max(rh, 1)
	side := max(rw, rh)
	padX, padY := (side-rw)/2, (side-rh)/2
	k := float64(side) / ageSize
	img.SampleInto(dst, ageSize, ageSize,
		imgproc.CornerMap(float64(rx-padX), float64(ry-padY), k),
		imgproc.RGBPlanes, imgproc.Raw,
		imgproc.Border{Clip: image.Rect(rx, ry, rx+rw, ry+rh)})
}

// estimate sets Age on faces that have Landmarks68, in batches.
func (a *ageEstimator) estimate(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	const per = 3 * ageSize * ageSize
	for start := 0; start < len(faces); start += a.maxBatch {
		chunk := faces[start:min(start+a.maxBatch, len(faces))]
		data := getBuffer(per * len(chunk))
		for i, f := range chunk {
			ageCrop(data[i*per:(i+1)*per], img, f.Landmarks68)
		}
		out, err := a.sess.Run(ctx, ort.Tensor{Shape: []int64{int64(len(chunk)), 3, ageSize, ageSize}, Data: data})
		putBuffer(data)
		if err != nil {
			return err
		}
		for i, f := range chunk {
			f.Age = &Age{Years: math.Max(0, float64(out[0].Data[i]))}
		}
	}
	return nil
}
