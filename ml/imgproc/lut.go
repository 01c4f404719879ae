package imgproc

import "sync"

// channelLUT turns a source byte into its normalised contribution to one
// output plane: lut[v] = v * coef. Looking the value up replaces an
// int-to-float conversion and a multiply per tap, and folds the tensor's
// scale (and, for grey, the luma weight) into the table, since bilinear
// interpolation is linear: interp(v*s) = interp(v)*s.
type channelLUT [256]float32

// planeLUTs are the tables of one SampleInto call: for each source channel
// R, G, B, its table and the plane it is written to; bias is added once per
// output sample (-mean*scale of that plane).
type planeLUTs struct {
	lut  [3]channelLUT
	off  [3]int // plane offset of source channel c (colour layouts)
	bias [3]float32
	coef [3]float32 // the tables' multipliers, for the vector kernel
	gray bool
}

var lutPool = sync.Pool{New: func() any { return new(planeLUTs) }}

// newPlaneLUTs builds the tables for a channel layout and normalisation on a
// w*h plane. Release it with lutPool.Put.
func newPlaneLUTs(ch Channels, n Norm, plane int) *planeLUTs {
	p := lutPool.Get().(*planeLUTs)
	var coef [3]float32
	p.gray = ch == GrayPlane
	if p.gray {
		s := n.Scale[0]
		coef = [3]float32{0.299 * s, 0.587 * s, 0.114 * s}
		p.off = [3]int{}
		b := -n.Mean[0] * s
		p.bias = [3]float32{b, b, b}
	} else {
		var mean [3]float32
		p.off, mean, coef = planeOrder(ch, n, plane)
		for c := range 3 {
			p.bias[c] = -mean[c] * coef[c]
		}
	}
	p.coef = coef
	for c := range 3 {
		t := &p.lut[c]
		for v := range 256 {
			t[v] = float32(v) * coef[c]
		}
	}
	return p
}

// planeOrder returns, for each source channel R, G, B in that order, the offset of the
// plane it is written to and its normalisation, so layouts are permuted once per call
// instead of per pixel (BGR: source R goes to plane 2 with the third mean and scale).
// GrayPlane, handled apart, gets zeros.
func planeOrder(ch Channels, n Norm, plane int) (off [3]int, mean, scale [3]float32) {
	switch ch {
	case RGBPlanes:
		return [3]int{0, plane, 2 * plane}, n.Mean, n.Scale
	case BGRPlanes:
		return [3]int{2 * plane, plane, 0},
			[3]float32{n.Mean[2], n.Mean[1], n.Mean[0]},
			[3]float32{n.Scale[2], n.Scale[1], n.Scale[0]}
	}
	return off, mean, scale
}
