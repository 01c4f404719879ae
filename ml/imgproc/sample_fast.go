package imgproc

import (
	"image"
	"math"
	"runtime"
	"sync"
)

// axisTap is the precomputed bilinear tap of one output column or row:
// first source index, weight of the second, and whether both taps are
// inside the clip rectangle.
type axisTap struct {
	i0     int
	f      float32
	inside bool
	// outside: both taps lie outside the clip (the sample is pure fill).
	outside bool
}

var tapPool = sync.Pool{New: func() any { s := make([]axisTap, 0, 1024); return &s }}

func axisTaps(buf []axisTap, n int, scale, offset float64, lo, hi int) []axisTap {
	buf = buf[:0]
	for u := 0; u < n; u++ {
		x := scale*float64(u) + offset
		x0f := math.Floor(x)
		x0 := int(x0f)
		buf = append(buf, axisTap{
			i0:      x0,
			f:       float32(x - x0f),
			inside:  x0 >= lo && x0+1 < hi,
			outside: x0+1 < lo || x0 >= hi,
		})
	}
	return buf
}

// sampleAxisAligned is SampleInto for transforms without rotation (crops,
// resizes, letterboxes): the taps of every column and row are computed once,
// and samples whose four neighbours are inside the clip run a tight loop.
func (m *RGB) sampleAxisAligned(dst []float32, w, h int, t Affine, ch Channels, n Norm, clip image.Rectangle, replicate bool, fill [3]float32) {
	xp := tapPool.Get().(*[]axisTap)
	yp := tapPool.Get().(*[]axisTap)
	xs := axisTaps(*xp, w, t.A, t.C, clip.Min.X, clip.Max.X)
	ys := axisTaps(*yp, h, t.E, t.F, clip.Min.Y, clip.Max.Y)
	defer func() {
		*xp, *yp = xs, ys
		tapPool.Put(xp)
		tapPool.Put(yp)
	}()
	plane := w * h
	stride := m.W * 3
	p := m.Pix
	// Where each source channel goes, with its normalisation: planes are
	// permuted once here instead of switching per pixel.
	off, mean, scale := planeOrder(ch, n, plane)
	gray := ch == GrayPlane
	// The fill colour after normalisation, in plane order, for samples
	// entirely outside the clip (letterbox padding).
	var nf [3]float32
	if !gray {
		src := [3]float32{fill[0], fill[1], fill[2]}
		for c := range 3 {
			nf[c] = (src[c] - mean[c]) * scale[c]
		}
	}
	put := func(o int, r, g, b float32) {
		if gray {
			dst[o] = (0.299*r + 0.587*g + 0.114*b - n.Mean[0]) * n.Scale[0]
			return
		}
		dst[off[0]+o] = (r - mean[0]) * scale[0]
		dst[off[1]+o] = (g - mean[1]) * scale[1]
		dst[off[2]+o] = (b - mean[2]) * scale[2]
	}
	// Columns whose two taps are inside the clip form one run [uLo, uHi)
	// for these monotonic maps; interior rows run a tight loop over it.
	uLo, uHi := interiorRun(xs)
	luts := newPlaneLUTs(ch, n, plane)
	defer lutPool.Put(luts)
	// The vector kernel takes the interior run's byte offsets and weights
	// as plain arrays.
	vec := haveAVX2 && !luts.gray && uHi > uLo
	var cols *vecCols
	if vec {
		cols = vecColsPool.Get().(*vecCols)
		defer vecColsPool.Put(cols)
		cols.offs, cols.fxs = cols.offs[:0], cols.fxs[:0]
		cols.increasing = true
		for _, tx := range xs[uLo:uHi] {
			o := int32(tx.i0 * 3)
			if k := len(cols.offs); k > 0 && o < cols.offs[k-1] {
				cols.increasing = false
			}
			cols.offs = append(cols.offs, o)
			cols.fxs = append(cols.fxs, tx.f)
		}
	}
	fillGray := (0.299*fill[0] + 0.587*fill[1] + 0.114*fill[2] - n.Mean[0]) * n.Scale[0]
	// fillRun writes the normalised fill colour to samples [o0, o1) of
	// every plane: letterbox padding and crops past the image's edge.
	fillRun := func(o0, o1 int) {
		if gray {
			s := dst[o0:o1]
			for i := range s {
				s[i] = fillGray
			}
			return
		}
		for c := range 3 {
			s := dst[off[c]+o0 : off[c]+o1]
			for i := range s {
				s[i] = nf[c]
			}
		}
	}
	// edge writes columns [u0, u1) of a row outside the interior run: runs
	// of pure fill at once, samples straddling the clip's edge one by one.
	edge := func(row, u0, u1 int, ty axisTap) {
		for u := u0; u < u1; {
			if !replicate && (ty.outside || xs[u].outside) {
				e := u + 1
				for e < u1 && (ty.outside || xs[e].outside) {
					e++
				}
				fillRun(row+u, row+e)
				u = e
				continue
			}
			tx := xs[u]
			r, g, b := m.bilinear(float64(tx.i0)+float64(tx.f), float64(ty.i0)+float64(ty.f), clip, replicate, fill)
			put(row+u, r, g, b)
			u++
		}
	}
	rows := func(v0, v1 int) {
		for v := v0; v < v1; v++ {
			ty := ys[v]
			row := v * w
			if !ty.inside || uLo >= uHi {
				edge(row, 0, w, ty)
				continue
			}
			edge(row, 0, uLo, ty)
			edge(row, uHi, w, ty)
			top := p[ty.i0*stride : (ty.i0+1)*stride]
			bot := p[(ty.i0+1)*stride : (ty.i0+2)*stride]
			switch {
			case luts.gray:
				luts.grayRow(dst[row+uLo:row+uHi], xs[uLo:uHi], top, bot, ty.f)
			case vec:
				n := luts.vectorRow(dst, row, uLo, cols, p[ty.i0*stride:], p[(ty.i0+1)*stride:], ty.f)
				luts.colourRow(dst, row, uLo+n, uHi, xs, top, bot, ty.f)
			default:
				luts.colourRow(dst, row, uLo, uHi, xs, top, bot, ty.f)
			}
		}
	}
	parallelRows(h, w*h, rows)
}

// parallelMinPixels is the output size from which rows are split across
// cores: below it the goroutines cost more than they save.
const parallelMinPixels = 64 * 1024

// parallelRows runs rows over [0, h) in one band per core when the output
// is large, so a single request's preprocessing uses the cores ONNX Runtime
// leaves idle while it waits (one intra-op thread per session).
func parallelRows(h, pixels int, rows func(v0, v1 int)) {
	n := runtime.GOMAXPROCS(0)
	if n < 2 || pixels < parallelMinPixels || h < 2*n {
		rows(0, h)
		return
	}
	var wg sync.WaitGroup
	for k := range n {
		v0, v1 := h*k/n, h*(k+1)/n
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows(v0, v1)
		}()
	}
	wg.Wait()
}

// interiorRun returns the run of columns whose taps are both inside the
// clip, or an empty run when they are not contiguous.
func interiorRun(xs []axisTap) (lo, hi int) {
	lo = -1
	for u, tx := range xs {
		if !tx.inside {
			continue
		}
		if lo < 0 {
			lo = u
		} else if hi != u {
			return 0, 0 // a gap: leave every column to the generic path
		}
		hi = u + 1
	}
	if lo < 0 {
		return 0, 0
	}
	return lo, hi
}

// colourRow writes the interior samples [uLo, uHi) of one output row of a
// colour layout: separable bilinear (vertical, then horizontal) on the
// looked-up, already scaled channel values.
func (l *planeLUTs) colourRow(dst []float32, row, uLo, uHi int, xs []axisTap, top, bot []uint8, fy float32) {
	lr, lg, lb := &l.lut[0], &l.lut[1], &l.lut[2]
	br, bg, bb := l.bias[0], l.bias[1], l.bias[2]
	n := uHi - uLo
	if n <= 0 {
		return
	}
	dr := dst[l.off[0]+row+uLo : l.off[0]+row+uHi]
	dg := dst[l.off[1]+row+uLo : l.off[1]+row+uHi]
	db := dst[l.off[2]+row+uLo : l.off[2]+row+uHi]
	xs = xs[uLo:uHi]
	_, _, _ = dr[n-1], dg[n-1], db[n-1]
	for k, tx := range xs {
		i := tx.i0 * 3
		a := top[i : i+6 : i+6]
		c := bot[i : i+6 : i+6]
		fx := tx.f
		r0 := lr[a[0]]
		r0 += fy * (lr[c[0]] - r0)
		r1 := lr[a[3]]
		r1 += fy * (lr[c[3]] - r1)
		g0 := lg[a[1]]
		g0 += fy * (lg[c[1]] - g0)
		g1 := lg[a[4]]
		g1 += fy * (lg[c[4]] - g1)
		b0 := lb[a[2]]
		b0 += fy * (lb[c[2]] - b0)
		b1 := lb[a[5]]
		b1 += fy * (lb[c[5]] - b1)
		dr[k] = r0 + fx*(r1-r0) + br
		dg[k] = g0 + fx*(g1-g0) + bg
		db[k] = b0 + fx*(b1-b0) + bb
	}
}

// grayRow is colourRow for the luma plane: the weighted channel sum of each
// tap first (luma is linear), then one interpolation.
func (l *planeLUTs) grayRow(d []float32, xs []axisTap, top, bot []uint8, fy float32) {
	lr, lg, lb := &l.lut[0], &l.lut[1], &l.lut[2]
	bias := l.bias[0]
	d = d[:len(xs)]
	for k, tx := range xs {
		i := tx.i0 * 3
		a := top[i : i+6 : i+6]
		c := bot[i : i+6 : i+6]
		t0 := lr[a[0]] + lg[a[1]] + lb[a[2]]
		t1 := lr[a[3]] + lg[a[4]] + lb[a[5]]
		b0 := lr[c[0]] + lg[c[1]] + lb[c[2]]
		b1 := lr[c[3]] + lg[c[4]] + lb[c[5]]
		t0 += fy * (b0 - t0)
		t1 += fy * (b1 - t1)
		d[k] = t0 + tx.f*(t1-t0) + bias
	}
}

// vecCols are the interior run's columns in the vector kernel's layout:
// byte offset of the first tap within a row, and the second tap's weight.
type vecCols struct {
	offs       []int32
	fxs        []float32
	increasing bool // offs ascend (any map without a mirror)
}

var vecColsPool = sync.Pool{New: func() any { return new(vecCols) }}

// vectorRow writes the interior run with colourRowAVX2; top and
// bot run to the end of the pixels (its 8-byte loads may cross a row's end).
// It returns how many samples it wrote: all but any at the very end of the
// pixels.
func (l *planeLUTs) vectorRow(dst []float32, row, uLo int, cols *vecCols, top, bot []uint8, fy float32) int {
	if !cols.increasing {
		return 0 // a mirrored map: rare, left to the scalar path
	}
	// Each sample reads 8 bytes from its offset in both rows: trim the
	// samples whose read would pass the end of the pixels.
	n := len(cols.offs)
	for n > 0 && int(cols.offs[n-1])+8 > len(bot) {
		n--
	}
	if n == 0 {
		return 0
	}
	var k rowConsts
	for i := range 8 {
		k.fy[i] = fy
	}
	k.chScale = [8]float32{l.coef[0], l.coef[1], l.coef[2]}
	k.chBias = [8]float32{l.bias[0], l.bias[1], l.bias[2]}
	k.perm = [8]int32{3, 4, 5, 3, 4, 5, 3, 4}
	dr := dst[l.off[0]+row+uLo : l.off[0]+row+uLo+n]
	dg := dst[l.off[1]+row+uLo : l.off[1]+row+uLo+n]
	db := dst[l.off[2]+row+uLo : l.off[2]+row+uLo+n]
	if len(top) < len(bot) || int(cols.offs[0]) < 0 {
		panic("imgproc: tap outside the pixels")
	}
	colourRowAVX2(&dr[0], &dg[0], &db[0], &cols.offs[0], &cols.fxs[0], n, &top[0], &bot[0], &k)
	return n
}
