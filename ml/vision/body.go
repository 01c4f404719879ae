package vision

import (
	"context"
	"math"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// bodyDetector runs YOLOX-Nano (COCO) and keeps the person class.
//
// Input (models/SOURCES.md §6, verified): letterbox into 416x416, scale
// r = min(416/w, 416/h), image at the top-left, padding 114; BGR raw.
// Output [3549, 85]: per anchor of strides 8, 16, 32 (row-major grids),
// cx, cy, w, h (raw), obj, 80 class scores (sigmoid already applied).
// cx = (p0 + gx)·s, w = exp(p2)·s, all divided by r; score = obj·cls[0].
type bodyDetector struct{ sess *ort.Session }

const yoloxSize = 416

func newBodyDetector(rt *ort.Runtime, src models.Source) (*bodyDetector, error) {
	b, err := src.Read(models.BodyDetector)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("yolox_nano", b, []string{"images"}, []string{"output"})
	if err != nil {
		return nil, err
	}
	return &bodyDetector{sess: s}, nil
}

func (d *bodyDetector) session() *ort.Session { return d.sess }

func (d *bodyDetector) detect(ctx context.Context, img *imgproc.RGB, opt BodyOptions) ([]*Object, error) {
	r := math.Min(yoloxSize/float64(img.W), yoloxSize/float64(img.H))
	data := getBuffer(3 * yoloxSize * yoloxSize)
	defer putBuffer(data)
	// Destination pixel u covers source u/r; sampling with the pixel-centre
	// convention of cv2.resize to (w·r, h·r) then pasting at the top-left.
	img.SampleInto(data, yoloxSize, yoloxSize,
		imgproc.Affine{A: 1 / r, C: 0.5/r - 0.5, E: 1 / r, F: 0.5/r - 0.5},
		imgproc.BGRPlanes, imgproc.Raw, imgproc.Border{Fill: [3]uint8{114, 114, 114}})
	out, err := d.sess.Run(ctx, ort.Tensor{Shape: []int64{1, 3, yoloxSize, yoloxSize}, Data: data})
	if err != nil {
		return nil, err
	}
	v := out[0].Data
	const cols = 85
	var boxes []geom.Box
	var scores []float64
	i := 0
	for _, stride := range []int{8, 16, 32} {
		g := yoloxSize / stride
		s := float64(stride)
		for gy := range g {
			for gx := range g {
				p := v[i*cols : (i+1)*cols]
				i++
				score := float64(p[4]) * float64(p[5])
				if score < opt.ScoreThreshold {
					continue
				}
				cx, cy := (float64(p[0])+float64(gx))*s/r, (float64(p[1])+float64(gy))*s/r
				w, h := math.Exp(float64(p[2]))*s/r, math.Exp(float64(p[3]))*s/r
				boxes = append(boxes, geom.Box{X1: cx - w/2, Y1: cy - h/2, X2: cx + w/2, Y2: cy + h/2})
				scores = append(scores, score)
			}
		}
	}
	var objs []*Object
	for _, k := range geom.NMS(boxes, scores, opt.NMSIoU) {
		objs = append(objs, &Object{Class: ClassBody, Confidence: scores[k], Box: boxes[k].Clamp(float64(img.W), float64(img.H))})
	}
	return objs, nil
}
