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
	var off [3]int
	var mean, scale [3]float32
	switch ch {
	case RGBPlanes:
		off = [3]int{0, plane, 2 * plane}
		mean, scale = n.Mean, n.Scale
	case BGRPlanes:
		off = [3]int{2 * plane, plane, 0}
		mean = [3]float32{n.Mean[2], n.Mean[1], n.Mean[0]}
		scale = [3]float32{n.Scale[2], n.Scale[1], n.Scale[0]}
	}
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
	rows := func(v0, v1 int) {
		for v := v0; v < v1; v++ {
			ty := ys[v]
			row := v * w
			if ty.inside && !gray {
				// Interior rows: one bounds check per row, per tap pair.
				dr, dg, db := dst[off[0]+row:off[0]+row+w], dst[off[1]+row:off[1]+row+w], dst[off[2]+row:off[2]+row+w]
				fy := ty.f
				top := p[ty.i0*stride:]
				bot := p[(ty.i0+1)*stride:]
				for u, tx := range xs {
					if !tx.inside {
						if (tx.outside) && !replicate {
							put(row+u, fill[0], fill[1], fill[2])
							continue
						}
						r, g, b := m.bilinear(float64(tx.i0)+float64(tx.f), float64(ty.i0)+float64(ty.f), clip, replicate, fill)
						put(row+u, r, g, b)
						continue
					}
					i := tx.i0 * 3
					a := top[i : i+6 : i+6]
					c := bot[i : i+6 : i+6]
					fx := tx.f
					w00, w01, w10, w11 := (1-fx)*(1-fy), fx*(1-fy), (1-fx)*fy, fx*fy
					dr[u] = (w00*float32(a[0]) + w01*float32(a[3]) + w10*float32(c[0]) + w11*float32(c[3]) - mean[0]) * scale[0]
					dg[u] = (w00*float32(a[1]) + w01*float32(a[4]) + w10*float32(c[1]) + w11*float32(c[4]) - mean[1]) * scale[1]
					db[u] = (w00*float32(a[2]) + w01*float32(a[5]) + w10*float32(c[2]) + w11*float32(c[5]) - mean[2]) * scale[2]
				}
				continue
			}
			for u, tx := range xs {
				o := row + u
				if (tx.outside || ty.outside) && !replicate {
					put(o, fill[0], fill[1], fill[2])
					continue
				}
				if tx.inside && ty.inside { // gray interior
					i := ty.i0*stride + tx.i0*3
					j := i + stride
					fx, fy := tx.f, ty.f
					w00, w01, w10, w11 := (1-fx)*(1-fy), fx*(1-fy), (1-fx)*fy, fx*fy
					r := w00*float32(p[i]) + w01*float32(p[i+3]) + w10*float32(p[j]) + w11*float32(p[j+3])
					g := w00*float32(p[i+1]) + w01*float32(p[i+4]) + w10*float32(p[j+1]) + w11*float32(p[j+4])
					b := w00*float32(p[i+2]) + w01*float32(p[i+5]) + w10*float32(p[j+2]) + w11*float32(p[j+5])
					put(o, r, g, b)
					continue
				}
				r, g, b := m.bilinear(float64(tx.i0)+float64(tx.f), float64(ty.i0)+float64(ty.f), clip, replicate, fill)
				put(o, r, g, b)
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
