package vision

import (
	"context"
	"math"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// livenessEstimator runs MiniFASNetV2 (Silent-Face-Anti-Spoofing).
//
// Crop (models/SOURCES.md §4, the upstream recipe): the face box scaled by
// 2.7 around its centre, the scale reduced so the crop fits in the image,
// shifted inside the image, corners truncated to integers; resized to 80x80,
// BGR, raw 0..255. Output: 3 logits; softmax; index 1 = real, 0 and 2 are
// spoof kinds.
type livenessEstimator struct{ sess *ort.Session }

const (
	livenessSize  = 80
	livenessScale = 2.7
	// LivenessThreshold is the p(real) at and above which a face is called
	// real.
	LivenessThreshold = 0.5
)

func newLivenessEstimator(rt *ort.Runtime, src models.Source) (*livenessEstimator, error) {
	b, err := src.Read(models.Liveness)
	if err != nil {
		return nil, err
	}
	s, err := rt.NewSession("minifasnet_v2", b, []string{"input"}, []string{"output"})
	if err != nil {
		return nil, err
	}
	return &livenessEstimator{sess: s}, nil
}

func (l *livenessEstimator) session() *ort.Session { return l.sess }

// livenessBox reproduces upstream's _get_new_box.
func livenessBox(b geom.Box, w, h int) geom.Box {
	bw, bh := b.W(), b.H()
	sw, sh := float64(w), float64(h)
	scale := math.Min((sh-1)/bh, math.Min((sw-1)/bw, livenessScale))
	nw, nh := bw*scale, bh*scale
	cx, cy := b.X1+bw/2, b.Y1+bh/2
	x1, y1, x2, y2 := cx-nw/2, cy-nh/2, cx+nw/2, cy+nh/2
	if x1 < 0 {
		x2 -= x1
		x1 = 0
	}
	if y1 < 0 {
		y2 -= y1
		y1 = 0
	}
	if x2 > sw-1 {
		x1 -= x2 - sw + 1
		x2 = sw - 1
	}
	if y2 > sh-1 {
		y1 -= y2 - sh + 1
		y2 = sh - 1
	}
	return geom.Box{X1: math.Trunc(x1), Y1: math.Trunc(y1), X2: math.Trunc(x2), Y2: math.Trunc(y2)}
}

func (l *livenessEstimator) estimate(ctx context.Context, img *imgproc.RGB, faces []*Object) error {
	for _, f := range faces {
		if f.Box.W() <= 0 || f.Box.H() <= 0 {
			continue
		}
		c := livenessBox(f.Box, img.W, img.H)
		data := make([]float32, 3*livenessSize*livenessSize)
		// Upstream slices [y1, y2] inclusive, hence the +1.
		img.SampleInto(data, livenessSize, livenessSize,
			imgproc.ResizeMap(c.X1, c.Y1, c.W()+1, c.H()+1, livenessSize, livenessSize),
			imgproc.BGRPlanes, imgproc.Raw, imgproc.Border{Replicate: true})
		out, err := l.sess.Run(ctx, ort.Tensor{Shape: []int64{1, 3, livenessSize, livenessSize}, Data: data})
		if err != nil {
			return err
		}
		p := softmax(out[0].Data)
		real := p[1]
		lv := &Liveness{Real: real >= LivenessThreshold, RealScore: real, Confidence: real}
		if !lv.Real {
			lv.Confidence = 1 - real
		}
		f.Liveness = lv
	}
	return nil
}
