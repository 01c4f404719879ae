package vision

import (
	"math"

	"github.com/vigilhq/vigil/ml/imgproc"
)

// Quality has no model (none with a permissive license exists; see
// models/SOURCES.md "Gaps"). It is computed from measurable parts, each
// mapped to 0..1 (1 = good for recognition):
//
//	size       = clamp((min(box w, box h) − 24) / (96 − 24))          face pixels; ≥ 96 px is full marks
//	sharpness  = 1 − exp(−varLaplacian / 100)                        on the aligned 112x112 grey face
//	exposure   = 1 − clamp((|mean − 127.5| − 40) / 87.5)              mean luma of that face
//	contrast   = clamp(stddev / 40)                                   luma standard deviation
//	pose       = clamp(1 − sqrt(yaw² + pitch²) / 60)                  degrees, from the fitter
//	confidence = detector confidence (1 for boxes given by the client)
//
// and combined as a weighted geometric mean, so one bad part pulls the total
// down however good the others are:
//
//	total = Π partᵢ^wᵢ  with w: sharpness 0.25, pose 0.20, size 0.15,
//	                            exposure 0.15, confidence 0.15, contrast 0.10
//
// (each part floored at 0.01 so the product stays informative).
func assessQuality(img *imgproc.RGB, f *Object) *Quality {
	q := &Quality{Confidence: clamp01(f.Confidence)}
	q.Size = clamp01((math.Min(f.Box.W(), f.Box.H()) - 24) / (96 - 24))

	grey := qualityCrop(img, f)
	var sum, sum2 float64
	for _, v := range grey {
		sum += float64(v)
		sum2 += float64(v) * float64(v)
	}
	n := float64(len(grey))
	mean := sum / n
	std := math.Sqrt(math.Max(0, sum2/n-mean*mean))
	q.Exposure = 1 - clamp01((math.Abs(mean-127.5)-40)/87.5)
	q.Contrast = clamp01(std / 40)
	q.Sharpness = 1 - math.Exp(-laplacianVariance(grey, alignedSize, alignedSize)/100)
	if f.Pose != nil {
		q.Pose = clamp01(1 - math.Hypot(f.Pose.Yaw, f.Pose.Pitch)/60)
	}

	parts := []struct{ v, w float64 }{
		{q.Sharpness, 0.25}, {q.Pose, 0.20}, {q.Size, 0.15},
		{q.Exposure, 0.15}, {q.Confidence, 0.15}, {q.Contrast, 0.10},
	}
	logTotal := 0.0
	for _, p := range parts {
		logTotal += p.w * math.Log(math.Max(p.v, 0.01))
	}
	q.Total = math.Exp(logTotal)
	return q
}

// qualityCrop is the face as the extractor sees it (aligned 112x112) when
// the face has 5 points, else its box stretched to 112x112; in grey 0..255.
func qualityCrop(img *imgproc.RGB, f *Object) []float32 {
	grey := make([]float32, alignedSize*alignedSize)
	if len(f.Keypoints) == 5 {
		if m, err := alignMap(f.Keypoints); err == nil {
			img.SampleInto(grey, alignedSize, alignedSize, m, imgproc.GrayPlane, imgproc.Raw, imgproc.Border{Replicate: true})
			return grey
		}
	}
	img.SampleInto(grey, alignedSize, alignedSize,
		imgproc.ResizeMap(f.Box.X1, f.Box.Y1, f.Box.W(), f.Box.H(), alignedSize, alignedSize),
		imgproc.GrayPlane, imgproc.Raw, imgproc.Border{Replicate: true})
	return grey
}

// laplacianVariance is the variance of the 4-neighbour Laplacian over the
// interior pixels: high for crisp edges, low for blur.
func laplacianVariance(g []float32, w, h int) float64 {
	var sum, sum2 float64
	n := 0
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			l := float64(g[i-1] + g[i+1] + g[i-w] + g[i+w] - 4*g[i])
			sum += l
			sum2 += l * l
			n++
		}
	}
	if n == 0 {
		return 0
	}
	m := sum / float64(n)
	return sum2/float64(n) - m*m
}
