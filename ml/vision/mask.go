package vision

import (
	"context"
	"math"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// maskEstimator runs the UltraFace RFB-640 masked-face detector on the face's
// region and reads the class of the best box on that face.
//
// Input (models/SOURCES.md §5): 640x480, RGB, (x − 127)/128. Outputs:
// scores [N,3] (background, face, masked_face, softmaxed) and boxes [N,4]
// normalised corners. The region is the face box's centre with a 4:3 window
// twice the face's larger side high, so the face fills about half the input
// height as in the model's training scenes. Among anchors whose box overlaps
// the face (IoU ≥ 0.3), the one with the highest face-or-masked score decides:
// masked when p(masked) > p(face), confidence p/(p(face)+p(masked)).
type maskEstimator struct{ sess *ort.Session }

const (
	maskW, maskH = 640, 480
	maskRegion   = 2.0
)

func newMaskEstimator(rt *ort.Runtime, src models.Source) (*maskEstimator, error) {
	b, err := src.Read(models.Mask)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("ultraface_masked_640", b, []string{"input"}, []string{"scores", "boxes"})
	if err != nil {
		return nil, err
	}
	return &maskEstimator{sess: s}, nil
}

func (m *maskEstimator) session() *ort.Session { return m.sess }

func (m *maskEstimator) estimate(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	for _, f := range faces {
		side := maskRegion * math.Max(f.Box.W(), f.Box.H())
		c := f.Box.Center()
		rw, rh := side*maskW/maskH, side
		region := geom.Box{X1: c.X - rw/2, Y1: c.Y - rh/2, X2: c.X + rw/2, Y2: c.Y + rh/2}
		data := getBuffer(3 * maskW * maskH)
		img.SampleInto(data, maskW, maskH,
			imgproc.ResizeMap(region.X1, region.Y1, rw, rh, maskW, maskH),
			imgproc.RGBPlanes, imgproc.Uniform(127, 1.0/128), imgproc.Border{Fill: [3]uint8{127, 127, 127}})
		out, err := m.sess.Run(ctx, ort.Tensor{Shape: []int64{1, 3, maskH, maskW}, Data: data})
		putBuffer(data)
		if err != nil {
			return err
		}
		scores, boxes := out[0].Data, out[1].Data
		// The face's box in the model's normalised input coordinates.
		target := geom.Box{
			X1: (f.Box.X1 - region.X1) / rw, Y1: (f.Box.Y1 - region.Y1) / rh,
			X2: (f.Box.X2 - region.X1) / rw, Y2: (f.Box.Y2 - region.Y1) / rh,
		}
		best, pFace, pMask := -1.0, 0.0, 0.0
		for i := 0; i < len(scores)/3; i++ {
			face, masked := float64(scores[3*i+1]), float64(scores[3*i+2])
			s := math.Max(face, masked)
			if s <= best {
				continue
			}
			b := geom.Box{X1: float64(boxes[4*i]), Y1: float64(boxes[4*i+1]), X2: float64(boxes[4*i+2]), Y2: float64(boxes[4*i+3])}
			if b.IoU(target) < 0.3 {
				continue
			}
			best, pFace, pMask = s, face, masked
		}
		if best < 0 || pFace+pMask == 0 {
			f.Mask = &Mask{Masked: false, Confidence: 0.5} // no face-like box at all: undecided
			continue
		}
		if pMask > pFace {
			f.Mask = &Mask{Masked: true, Confidence: pMask / (pFace + pMask)}
		} else {
			f.Mask = &Mask{Masked: false, Confidence: pFace / (pFace + pMask)}
		}
	}
	return nil
}
