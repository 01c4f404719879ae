package imgproc

import (
	"image"
	"math"
)

// Affine maps a destination pixel (u, v) to the source position
// x = A*u + B*v + C, y = D*u + E*v + F, in pixel-index coordinates (pixel
// (i, j) has its centre at (i, j)). Every model preprocessing step here, be it
// a stretch, a crop with margins, a letterbox or a face alignment, is one
// Affine followed by bilinear sampling.
type Affine struct{ A, B, C, D, E, F float64 }

// Apply maps (u, v) through the transform.
func (t Affine) Apply(u, v float64) (x, y float64) {
	return t.A*u + t.B*v + t.C, t.D*u + t.E*v + t.F
}

// Invert returns the inverse transform; ok is false when t is singular.
func (t Affine) Invert() (inv Affine, ok bool) {
	det := t.A*t.E - t.B*t.D
	if math.Abs(det) < 1e-12 {
		return Affine{}, false
	}
	a, b, d, e := t.E/det, -t.B/det, -t.D/det, t.A/det
	return Affine{A: a, B: b, C: -(a*t.C + b*t.F), D: d, E: e, F: -(d*t.C + e*t.F)}, true
}

// ResizeMap maps a w x h output onto the source rectangle (x, y, sw, sh)
// with half-pixel centres (the OpenCV/PIL convention for cv2.resize).
func ResizeMap(x, y, sw, sh float64, w, h int) Affine {
	kx, ky := sw/float64(w), sh/float64(h)
	return Affine{A: kx, C: x + 0.5*kx - 0.5, E: ky, F: y + 0.5*ky - 0.5}
}

// CornerMap maps output (u, v) to (x + u*k, y + v*k): TensorFlow's legacy
// bilinear resize (align_corners=false, half_pixel_centers=false).
func CornerMap(x, y, k float64) Affine {
	return Affine{A: k, C: x, E: k, F: y}
}

// Channels selects the colour layout of a tensor.
type Channels int

const (
	// RGBPlanes writes three planes R, G, B.
	RGBPlanes Channels = iota
	// BGRPlanes writes three planes B, G, R (OpenCV-trained models).
	BGRPlanes
	// GrayPlane writes one plane of luma, 0.299R + 0.587G + 0.114B (as
	// OpenCV's BGR2GRAY).
	GrayPlane
)

// Planes is the number of channels the layout writes.
func (c Channels) Planes() int {
	if c == GrayPlane {
		return 1
	}
	return 3
}

// Norm turns a 0..255 sample v of channel c (in the tensor's channel order)
// into (v - Mean[c]) * Scale[c].
type Norm struct {
	Mean  [3]float32
	Scale [3]float32
}

// Raw keeps samples as 0..255.
var Raw = Norm{Scale: [3]float32{1, 1, 1}}

// Uniform is a Norm with the same mean and scale on every channel.
func Uniform(mean, scale float32) Norm {
	return Norm{Mean: [3]float32{mean, mean, mean}, Scale: [3]float32{scale, scale, scale}}
}

// Border decides what is read outside the source.
type Border struct {
	// Clip limits reads to this rectangle of the source; the zero rectangle
	// means the whole image.
	Clip image.Rectangle
	// Replicate repeats the nearest edge pixel (OpenCV BORDER_REPLICATE);
	// otherwise Fill is read (BORDER_CONSTANT).
	Replicate bool
	Fill      [3]uint8
}

// SampleInto fills dst (planar, CHW, len >= planes*w*h) with the w x h
// bilinear resampling of m through t.
func (m *RGB) SampleInto(dst []float32, w, h int, t Affine, ch Channels, n Norm, b Border) {
	clip := b.Clip
	if clip.Empty() {
		clip = image.Rect(0, 0, m.W, m.H)
	}
	clip = clip.Intersect(image.Rect(0, 0, m.W, m.H))
	replicate := b.Replicate && !clip.Empty()
	fill := [3]float32{float32(b.Fill[0]), float32(b.Fill[1]), float32(b.Fill[2])}
	if t.B == 0 && t.D == 0 {
		m.sampleAxisAligned(dst, w, h, t, ch, n, clip, replicate, fill)
		return
	}
	// Rotated transforms (face alignment): interior samples inline through
	// the lookup tables (separable lerps on scaled values), borders through
	// bilinear.
	m.sampleRotated(dst, w, h, t, ch, n, clip, replicate, fill)
}

func (m *RGB) sampleRotated(dst []float32, w, h int, t Affine, ch Channels, n Norm, clip image.Rectangle, replicate bool, fill [3]float32) {
	plane := w * h
	off, mean, scale := planeOrder(ch, n, plane)
	luts := newPlaneLUTs(ch, n, plane)
	defer lutPool.Put(luts)
	// Offsets are int32 in the vector kernel: images up to 2 GB (the decode
	// limits keep them far below).
	if haveAVX2 && ch != GrayPlane && len(m.Pix) < 1<<31-1 {
		m.sampleRotatedVector(dst, w, h, t, luts, n, ch, clip, replicate, fill)
		return
	}
	lr, lg, lb := &luts.lut[0], &luts.lut[1], &luts.lut[2]
	bias := luts.bias
	gray := ch == GrayPlane
	stride := m.W * 3
	p := m.Pix
	x0min, y0min := float64(clip.Min.X), float64(clip.Min.Y)
	x0max, y0max := float64(clip.Max.X-1), float64(clip.Max.Y-1) // exclusive bound for the first tap
	for v := 0; v < h; v++ {
		fv := float64(v)
		x := t.B*fv + t.C
		y := t.E*fv + t.F
		for u := 0; u < w; u++ {
			o := v*w + u
			if x >= x0min && y >= y0min && x < x0max && y < y0max {
				x0, y0 := int(x), int(y) // x, y >= 0 here, so truncation is floor
				fx, fy := float32(x-float64(x0)), float32(y-float64(y0))
				i := y0*stride + x0*3
				a := p[i : i+6 : i+6]
				c := p[i+stride : i+stride+6 : i+stride+6]
				if gray {
					t0 := lr[a[0]] + lg[a[1]] + lb[a[2]]
					t1 := lr[a[3]] + lg[a[4]] + lb[a[5]]
					b0 := lr[c[0]] + lg[c[1]] + lb[c[2]]
					b1 := lr[c[3]] + lg[c[4]] + lb[c[5]]
					t0 += fy * (b0 - t0)
					t1 += fy * (b1 - t1)
					dst[o] = t0 + fx*(t1-t0) + bias[0]
				} else {
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
					dst[off[0]+o] = r0 + fx*(r1-r0) + bias[0]
					dst[off[1]+o] = g0 + fx*(g1-g0) + bias[1]
					dst[off[2]+o] = b0 + fx*(b1-b0) + bias[2]
				}
			} else {
				r, g, bl := m.bilinear(x, y, clip, replicate, fill)
				if gray {
					dst[o] = (0.299*r + 0.587*g + 0.114*bl - n.Mean[0]) * n.Scale[0]
				} else {
					dst[off[0]+o] = (r - mean[0]) * scale[0]
					dst[off[1]+o] = (g - mean[1]) * scale[1]
					dst[off[2]+o] = (bl - mean[2]) * scale[2]
				}
			}
			x += t.A
			y += t.D
		}
	}
}

// Sample returns the w x h resampling of m through t as an RGB image.
func (m *RGB) Sample(w, h int, t Affine, b Border) *RGB {
	buf := make([]float32, 3*w*h)
	m.SampleInto(buf, w, h, t, RGBPlanes, Raw, b)
	out := NewRGB(w, h)
	plane := w * h
	for i := 0; i < plane; i++ {
		out.Pix[3*i] = clampByte(buf[i])
		out.Pix[3*i+1] = clampByte(buf[plane+i])
		out.Pix[3*i+2] = clampByte(buf[2*plane+i])
	}
	return out
}

// Gray returns the luma plane of m as float32 values 0..255.
func (m *RGB) Gray() []float32 {
	out := make([]float32, m.W*m.H)
	for i := range out {
		r, g, b := m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2]
		out[i] = 0.299*float32(r) + 0.587*float32(g) + 0.114*float32(b)
	}
	return out
}

func clampByte(v float32) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	default:
		return uint8(v + 0.5)
	}
}

func (m *RGB) bilinear(x, y float64, clip image.Rectangle, replicate bool, fill [3]float32) (r, g, b float32) {
	x0f, y0f := math.Floor(x), math.Floor(y)
	fx, fy := float32(x-x0f), float32(y-y0f)
	x0, y0 := int(x0f), int(y0f)
	if x0 >= clip.Min.X && y0 >= clip.Min.Y && x0+1 < clip.Max.X && y0+1 < clip.Max.Y {
		// Fast path: all four neighbours inside.
		i := (y0*m.W + x0) * 3
		j := i + m.W*3
		p := m.Pix
		w00, w01, w10, w11 := (1-fx)*(1-fy), fx*(1-fy), (1-fx)*fy, fx*fy
		r = w00*float32(p[i]) + w01*float32(p[i+3]) + w10*float32(p[j]) + w11*float32(p[j+3])
		g = w00*float32(p[i+1]) + w01*float32(p[i+4]) + w10*float32(p[j+1]) + w11*float32(p[j+4])
		b = w00*float32(p[i+2]) + w01*float32(p[i+5]) + w10*float32(p[j+2]) + w11*float32(p[j+5])
		return r, g, b
	}
	var acc [3]float32
	for k := 0; k < 4; k++ {
		xi, yi := x0+(k&1), y0+(k>>1)
		wx, wy := fx, fy
		if k&1 == 0 {
			wx = 1 - fx
		}
		if k>>1 == 0 {
			wy = 1 - fy
		}
		wgt := wx * wy
		if wgt == 0 {
			continue
		}
		var px [3]float32
		inside := xi >= clip.Min.X && yi >= clip.Min.Y && xi < clip.Max.X && yi < clip.Max.Y
		switch {
		case inside:
			i := (yi*m.W + xi) * 3
			px = [3]float32{float32(m.Pix[i]), float32(m.Pix[i+1]), float32(m.Pix[i+2])}
		case replicate:
			xi = min(max(xi, clip.Min.X), clip.Max.X-1)
			yi = min(max(yi, clip.Min.Y), clip.Max.Y-1)
			i := (yi*m.W + xi) * 3
			px = [3]float32{float32(m.Pix[i]), float32(m.Pix[i+1]), float32(m.Pix[i+2])}
		default:
			px = fill
		}
		acc[0] += wgt * px[0]
		acc[1] += wgt * px[1]
		acc[2] += wgt * px[2]
	}
	return acc[0], acc[1], acc[2]
}
