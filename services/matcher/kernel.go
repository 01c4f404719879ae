package matcher

// Scoring kernels. The 1:N scan is memory-bound: each template is read once per pass,
// so the hot loop works on int8 codes (a quarter of the float32 bytes) and only the
// few candidates that survive are re-scored in float32. The portable path below is
// plain Go; kernel_amd64.s adds an AVX2 path that is chosen at start when the CPU
// has it (see kernel_amd64.go), so the same binary runs on CPUs without AVX.

// dotsInt8 writes into out[i] the int32 dot product of q with the i-th code row
// (rows of length dim, laid end to end in codes) for n rows.
var dotsInt8 = dotsInt8Generic

// kernelName says which implementation dotsInt8 uses (for logs and the bench).
var kernelName = "generic"

func dotsInt8Generic(q []int8, codes []int8, dim, n int, out []int32) {
	out = out[:n]
	for r := range out {
		row := codes[r*dim : r*dim+dim]
		var s0, s1, s2, s3 int32
		i := 0
		for ; i+4 <= len(q) && i+4 <= len(row); i += 4 {
			a, b := q[i:i+4:i+4], row[i:i+4:i+4] // one bounds check per four products
			s0 += int32(a[0]) * int32(b[0])
			s1 += int32(a[1]) * int32(b[1])
			s2 += int32(a[2]) * int32(b[2])
			s3 += int32(a[3]) * int32(b[3])
		}
		for ; i < len(q) && i < len(row); i++ {
			s0 += int32(q[i]) * int32(row[i])
		}
		out[r] = s0 + s1 + s2 + s3
	}
}

// filterAbove writes to idx the positions i where float32(dots[i])*units[i] > thr
// and returns how many (idx needs room for len(dots)).
var filterAbove = func(dots []int32, units []float32, thr float32, idx []int32) int {
	return filterAboveGeneric(dots, units, thr, idx, 0)
}

func filterAboveGeneric(dots []int32, units []float32, thr float32, idx []int32, base int32) int {
	k := 0
	units = units[:len(dots)]
	for i, d := range dots {
		if float32(d)*units[i] > thr {
			idx[k] = base + int32(i)
			k++
		}
	}
	return k
}

// dotFloat32 is the float32 dot product used to re-rank candidates and by callers
// that score one pair.
func dotFloat32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}
