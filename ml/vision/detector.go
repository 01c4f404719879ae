package vision

import (
	"context"
	"fmt"
	"math"

	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// faceDetector runs YuNet-s with a dynamic input size (yunet_s_dynamic, the
// network of face_detection_yunet_2023mar without its fixed 640x640 input).
//
// Preprocessing: the image is scaled by r = 640/max(w, h) (aspect kept) and
// placed at the top-left of an input whose sides are rounded up to multiples
// of 32, the rest black; BGR, raw 0..255. A 1126x661 photo thus runs at
// 640x384 instead of 640x640: 40% fewer pixels to resample and to infer.
// models/SOURCES.md §1 verified stretching the whole image to 640x640; that
// works for near-square photos but squeezes faces in tall or wide ones
// (biden_1.jpg, 970x2204, gave a box twice the face's height).
// Decoding, per stride s in 8, 16, 32 over a (640/s)² grid in row-major
// order (cols = input width / s): score = sqrt(clamp(cls)·clamp(obj)); centre = ((col, row) +
// bbox[0:2])·s; size = exp(bbox[2:4])·s; landmark k = ((col, row) +
// kps[2k:2k+2])·s. Then NMS.
type faceDetector struct {
	sess *ort.Session
}

const yunetSize = 640

var yunetStrides = []int{8, 16, 32}

func newFaceDetector(rt *ort.Runtime, src models.Source) (*faceDetector, error) {
	b, err := src.Read(models.FaceDetector)
	if err != nil {
		return nil, err
	}
	var outs []string
	for _, kind := range []string{"cls", "obj", "bbox", "kps"} {
		for _, s := range yunetStrides {
			outs = append(outs, fmt.Sprintf("%s_%d", kind, s))
		}
	}
	s, err := rt.NewSession("yunet", b, []string{"input"}, outs)
	if err != nil {
		return nil, err
	}
	return &faceDetector{sess: s}, nil
}

// Input builds the detector tensor of img (exported for the benchmark's bare
// runs through the package's DetectorInput).
func (d *faceDetector) input(img *imgproc.RGB) ort.Tensor {
	k := letterboxScale(img.W, img.H) // source pixels per input pixel
	w, h := yunetInputSize(img.W, img.H)
	data := getBuffer(3 * w * h)
	img.SampleInto(data, w, h,
		imgproc.ResizeMap(0, 0, k*float64(w), k*float64(h), w, h),
		imgproc.BGRPlanes, imgproc.Raw, imgproc.Border{})
	return ort.Tensor{Shape: []int64{1, 3, int64(h), int64(w)}, Data: data}
}

// yunetInputSize is the detector input for a w x h image: the scaled image
// rounded up to multiples of the largest stride.
func yunetInputSize(w, h int) (int, int) {
	k := letterboxScale(w, h)
	up := func(v int) int {
		n := int(math.Ceil(float64(v)/k - 1e-9))
		return max(32, (n+31)/32*32)
	}
	return min(up(w), yunetSize), min(up(h), yunetSize)
}

func (d *faceDetector) detect(ctx context.Context, img *imgproc.RGB, opt FaceOptions) ([]*Object, error) {
	in := d.input(img)
	out, err := d.sess.Run(ctx, in)
	putBuffer(in.Data)
	if err != nil {
		return nil, err
	}
	return d.decode(out, img.W, img.H, opt), nil
}

func (d *faceDetector) decode(out []ort.Tensor, w, h int, opt FaceOptions) []*Object {
	sx := letterboxScale(w, h)
	sy := sx
	n := len(yunetStrides)
	var boxes []geom.Box
	var scores []float64
	var kps [][]geom.Point
	for si, stride := range yunetStrides {
		cls, obj, bbox, kp := out[si].Data, out[n+si].Data, out[2*n+si].Data, out[3*n+si].Data
		iw, _ := yunetInputSize(w, h)
		cols := iw / stride
		s := float64(stride)
		for i := range cls {
			score := math.Sqrt(clamp01(float64(cls[i])) * clamp01(float64(obj[i])))
			if score < opt.ScoreThreshold {
				continue
			}
			row, col := float64(i/cols), float64(i%cols)
			cx := (col + float64(bbox[4*i])) * s
			cy := (row + float64(bbox[4*i+1])) * s
			bw := math.Exp(float64(bbox[4*i+2])) * s
			bh := math.Exp(float64(bbox[4*i+3])) * s
			box := geom.Box{X1: (cx - bw/2) * sx, Y1: (cy - bh/2) * sy, X2: (cx + bw/2) * sx, Y2: (cy + bh/2) * sy}
			if math.Min(box.W(), box.H()) < opt.MinFaceSize {
				continue
			}
			pts := make([]geom.Point, 5)
			for k := range 5 {
				pts[k] = geom.Point{
					X: (col + float64(kp[10*i+2*k])) * s * sx,
					Y: (row + float64(kp[10*i+2*k+1])) * s * sy,
				}
			}
			boxes = append(boxes, box)
			scores = append(scores, score)
			kps = append(kps, pts)
		}
	}
	var objs []*Object
	for _, i := range geom.NMS(boxes, scores, opt.NMSIoU) {
		objs = append(objs, &Object{
			Class:      ClassFace,
			Confidence: scores[i],
			Box:        boxes[i].Clamp(float64(w), float64(h)),
			Keypoints:  kps[i],
		})
	}
	return objs
}

// letterboxScale is the number of source pixels per detector input pixel.
func letterboxScale(w, h int) float64 { return float64(max(w, h)) / yunetSize }

func clamp01(v float64) float64 { return math.Max(0, math.Min(1, v)) }
