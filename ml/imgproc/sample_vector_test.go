package imgproc

import (
	"image"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestVectorKernelAgreesWithScalarAndReference runs the models' maps
// (detector downscale to the image's last row and column, mask upscale with
// fill, fitter crop, letterbox, a mirror, face alignment, a rotation across
// the bottom-right corner) through SampleInto with the AVX2 kernels and
// without them, and bounds both against the reference
// bilinear, per sample, on a real photo.
func TestVectorKernelAgreesWithScalarAndReference(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2+FMA on this CPU: only the scalar path exists")
	}
	d, err := Decode(readPhoto(t, "obama_1.jpg"), Limits{}) // 910x1137
	require.NoError(t, err)
	k := float64(max(d.W, d.H)) / 640
	cases := []struct {
		name string
		w, h int
		tr   Affine
		ch   Channels
		n    Norm
		b    Border
	}{
		{"detector", 512, 640, ResizeMap(0, 0, k*512, k*640, 512, 640), BGRPlanes, Raw, Border{}},
		{"mask", 640, 480, ResizeMap(250, -40, 700, 525, 640, 480), RGBPlanes, Uniform(127, 1.0/128), Border{Fill: [3]uint8{127, 127, 127}}},
		{"fitter", 160, 160, ResizeMap(371.3, 90.7, 240.2, 240.2, 160, 160), BGRPlanes, Uniform(127, 1.0/127), Border{}},
		{"letterbox", 416, 416, Affine{A: 1137.0 / 416, C: 1137.0/832 - 0.5, E: 1137.0 / 416, F: 1137.0/832 - 0.5}, BGRPlanes, Raw, Border{Fill: [3]uint8{114, 114, 114}}},
		{"mirrored", 200, 100, Affine{A: -1.5, C: 800, E: 1.5, F: 10}, RGBPlanes, Raw, Border{}},
		{"aligned", 112, 112, Affine{A: 2.1, B: -0.3, C: 300, D: 0.3, E: 2.1, F: 200}, RGBPlanes, Uniform(127.5, 1/127.5), Border{}},
		{"rotated-edge", 112, 112, Affine{A: 2, B: -0.5, C: 820, D: 0.5, E: 2, F: 1000}, BGRPlanes, Raw, Border{Replicate: true}},
		{"odd-width", 77, 33, ResizeMap(10, 10, 800, 300, 77, 33), RGBPlanes, Norm{Mean: [3]float32{1, 2, 3}, Scale: [3]float32{0.5, 2, -1}}, Border{Replicate: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vec := make([]float32, 3*c.w*c.h)
			d.SampleInto(vec, c.w, c.h, c.tr, c.ch, c.n, c.b)
			haveAVX2 = false
			scalar := make([]float32, len(vec))
			d.SampleInto(scalar, c.w, c.h, c.tr, c.ch, c.n, c.b)
			haveAVX2 = true
			plane := c.w * c.h
			clip := image.Rect(0, 0, d.W, d.H)
			fill := [3]float32{float32(c.b.Fill[0]), float32(c.b.Fill[1]), float32(c.b.Fill[2])}
			order := [3]int{0, 1, 2}
			if c.ch == BGRPlanes {
				order = [3]int{2, 1, 0}
			}
			var worstScalar, worstRef float64
			for v := range c.h {
				for u := range c.w {
					x, y := c.tr.Apply(float64(u), float64(v))
					r, g, b := d.bilinear(x, y, clip, c.b.Replicate, fill)
					src := [3]float32{r, g, b}
					for p := range 3 {
						o := p*plane + v*c.w + u
						ref := (src[order[p]] - c.n.Mean[p]) * c.n.Scale[p]
						// Compare in 0..255 levels whatever the tensor's scale.
						lv := float64(c.n.Scale[p])
						worstScalar = math.Max(worstScalar, math.Abs(float64(vec[o]-scalar[o])/lv))
						worstRef = math.Max(worstRef, math.Abs(float64(vec[o]-ref)/lv))
					}
				}
			}
			require.Less(t, worstScalar, 0.01, "vector vs scalar, in levels")
			require.Less(t, worstRef, 0.01, "vector vs reference bilinear, in levels")
		})
	}
}
