package imgproc

import (
	"image"
	"sync"
)

// warpRuns collects, for one output row of a rotated map, the run of
// samples whose taps are all inside, in the layout of warpRowAVX2.
type warpRuns struct {
	offs     []int32
	fxs, fys []float32
}

var warpPool = sync.Pool{New: func() any { return new(warpRuns) }}

// sampleRotatedVector is sampleRotated for colour layouts on CPUs with AVX2:
// per row, the interior samples (a single run: a line crosses the convex
// clip once) go through warpRowAVX2; the others through bilinear.
func (m *RGB) sampleRotatedVector(dst []float32, w, h int, t Affine, luts *planeLUTs, n Norm, ch Channels, clip image.Rectangle, replicate bool, fill [3]float32) {
	var mean, scale [3]float32
	switch ch {
	case BGRPlanes:
		mean = [3]float32{n.Mean[2], n.Mean[1], n.Mean[0]}
		scale = [3]float32{n.Scale[2], n.Scale[1], n.Scale[0]}
	default:
		mean, scale = n.Mean, n.Scale
	}
	off := luts.off
	var k rowConsts
	k.chScale = [8]float32{luts.coef[0], luts.coef[1], luts.coef[2]}
	k.chBias = [8]float32{luts.bias[0], luts.bias[1], luts.bias[2]}
	k.perm = [8]int32{3, 4, 5, 3, 4, 5, 3, 4}
	runs := warpPool.Get().(*warpRuns)
	defer warpPool.Put(runs)
	stride := m.W * 3
	p := m.Pix
	x0min, y0min := float64(clip.Min.X), float64(clip.Min.Y)
	x0max, y0max := float64(clip.Max.X-1), float64(clip.Max.Y-1) // exclusive bound for the first tap
	for v := 0; v < h; v++ {
		fv := float64(v)
		x := t.B*fv + t.C
		y := t.E*fv + t.F
		runs.offs, runs.fxs, runs.fys = runs.offs[:0], runs.fxs[:0], runs.fys[:0]
		start := 0
		flush := func() {
			nr := len(runs.offs)
			if nr == 0 {
				return
			}
			o := v*w + start
			dr := dst[off[0]+o : off[0]+o+nr]
			dg := dst[off[1]+o : off[1]+o+nr]
			db := dst[off[2]+o : off[2]+o+nr]
			warpRowAVX2(&dr[0], &dg[0], &db[0], &runs.offs[0], &runs.fxs[0], &runs.fys[0], nr, &p[0], stride, &k)
			runs.offs, runs.fxs, runs.fys = runs.offs[:0], runs.fxs[:0], runs.fys[:0]
		}
		for u := 0; u < w; u++ {
			if x >= x0min && y >= y0min && x < x0max && y < y0max {
				x0, y0 := int(x), int(y) // x, y >= 0 here, so truncation is floor
				i := y0*stride + x0*3
				// The kernel reads 8 bytes at i and at i+stride.
				if i+stride+8 <= len(p) {
					if len(runs.offs) == 0 {
						start = u
					}
					runs.offs = append(runs.offs, int32(i))
					runs.fxs = append(runs.fxs, float32(x-float64(x0)))
					runs.fys = append(runs.fys, float32(y-float64(y0)))
					x += t.A
					y += t.D
					continue
				}
			}
			flush()
			r, g, bl := m.bilinear(x, y, clip, replicate, fill)
			o := v*w + u
			dst[off[0]+o] = (r - mean[0]) * scale[0]
			dst[off[1]+o] = (g - mean[1]) * scale[1]
			dst[off[2]+o] = (bl - mean[2]) * scale[2]
			x += t.A
			y += t.D
		}
		flush()
	}
}
