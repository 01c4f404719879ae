package matcher

import (
	"fmt"
	"math"
)

// Templates are kept as 16-bit fixed point with one scale per vector, split into two
// int8 planes: hi is the scan code (what the 1:N pass reads, a quarter of the float32
// bytes) and lo the residual that the float32 re-rank adds back. Together they hold
// each component to within max|v|/65024, far below the noise of any face model, at
// half the memory of float32; the exact float32 rows stay in PostgreSQL.
//
//	v16 = round(v / max|v| * 32512)   in [-32512, 32512]
//	hi  = (v16 + 128) >> 8            in [-127, 127]  (VPSIGNB needs no -128)
//	lo  = v16 - hi*256                in [-128, 127]
const fixedMax = 32512

// quantizeSplit fills hi and lo for v and returns unit, the value of one 16-bit step
// (so one hi step is 256*unit = max|v|/127).
func quantizeSplit(v []float32, hi, lo []int8) (unit float32) {
	var m float32
	for _, x := range v {
		if a := float32(math.Abs(float64(x))); a > m {
			m = a
		}
	}
	if m == 0 {
		clear(hi)
		clear(lo)
		return 0
	}
	inv := fixedMax / m
	for i, x := range v {
		q := int32(math.Round(float64(x * inv)))
		q = min(max(q, -fixedMax), fixedMax)
		h := (q + 128) >> 8
		hi[i] = int8(h)
		lo[i] = int8(q - h*256)
	}
	return m / fixedMax
}

// quantizeQuery makes the int8 scan code of a query and returns the value of one step.
func quantizeQuery(v []float32, code []int8) (step float32) {
	var m float32
	for _, x := range v {
		if a := float32(math.Abs(float64(x))); a > m {
			m = a
		}
	}
	if m == 0 {
		clear(code)
		return 0
	}
	inv := 127 / m
	for i, x := range v {
		code[i] = int8(min(max(math.Round(float64(x*inv)), -127), 127))
	}
	return m / 127
}

// dotFixed is the re-rank score: q (float32) against the 16-bit reconstruction.
func dotFixed(q []float32, hi, lo []int8, unit float32) float32 {
	hi = hi[:len(q)]
	lo = lo[:len(q)]
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(q); i += 2 {
		s0 += q[i] * float32(int32(hi[i])<<8+int32(lo[i]))
		s1 += q[i+1] * float32(int32(hi[i+1])<<8+int32(lo[i+1]))
	}
	for ; i < len(q); i++ {
		s0 += q[i] * float32(int32(hi[i])<<8+int32(lo[i]))
	}
	return (s0 + s1) * unit
}

// normalized checks a template and returns it scaled to unit length (models emit
// L2-normalised vectors; renormalising makes the dot product a cosine regardless).
func normalized(v []float32, dim int) ([]float32, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: empty vector", ErrInvalidTemplate)
	}
	if dim > 0 && len(v) != dim {
		return nil, fmt.Errorf("%w: dimension %d, gallery has %d", ErrInvalidTemplate, len(v), dim)
	}
	var ss float64
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: component %d is %v", ErrInvalidTemplate, i, x)
		}
		ss += f * f
	}
	if ss == 0 {
		return nil, fmt.Errorf("%w: zero vector", ErrInvalidTemplate)
	}
	inv := 1 / math.Sqrt(ss)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out, nil
}

// normalizeInPlace checks v as normalized does and scales it to unit length in place
// (no copy when it already is one, as rows loaded from the store are).
func normalizeInPlace(v []float32) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: empty vector", ErrInvalidTemplate)
	}
	var ss float64
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%w: component %d is %v", ErrInvalidTemplate, i, x)
		}
		ss += f * f
	}
	if ss == 0 {
		return fmt.Errorf("%w: zero vector", ErrInvalidTemplate)
	}
	if math.Abs(ss-1) > 1e-6 {
		inv := 1 / math.Sqrt(ss)
		for i, x := range v {
			v[i] = float32(float64(x) * inv)
		}
	}
	return nil
}
