package matcher

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDotsInt8KernelsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ dim, n int }{{128, 1}, {128, 4}, {128, 37}, {64, 9}, {96, 8}, {33, 5}, {512, 13}, {192, 7}} {
		q := make([]int8, tc.dim)
		codes := make([]int8, tc.dim*tc.n)
		for i := range q {
			q[i] = int8(rng.IntN(255) - 127)
		}
		for i := range codes {
			codes[i] = int8(rng.IntN(255) - 127)
		}
		// Extremes catch saturation bugs.
		for i := 0; i < tc.dim; i++ {
			codes[i] = -127
			q[i] = -127
		}
		want := make([]int32, tc.n)
		for r := 0; r < tc.n; r++ {
			var s int32
			for i := 0; i < tc.dim; i++ {
				s += int32(q[i]) * int32(codes[r*tc.dim+i])
			}
			want[r] = s
		}
		for _, k := range []string{"generic", "avx2", "avx512vnni"} {
			restore := setKernel(k)
			got := make([]int32, tc.n)
			dotsInt8(q, codes, tc.dim, tc.n, got)
			restore()
			require.Equal(t, want, got, "kernel %s dim %d n %d", k, tc.dim, tc.n)
		}
	}
}

// BenchmarkDotsInt8 scores a 256-row block (the scan's unit) with each kernel.
func BenchmarkDotsInt8(b *testing.B) {
	const dim, n = 128, 256
	rng := rand.New(rand.NewPCG(1, 2))
	q := make([]int8, dim)
	codes := make([]int8, dim*n)
	for i := range q {
		q[i] = int8(rng.IntN(255) - 127)
	}
	for i := range codes {
		codes[i] = int8(rng.IntN(255) - 127)
	}
	out := make([]int32, n)
	for _, k := range []string{"generic", "avx2", "avx512vnni"} {
		b.Run(k, func(b *testing.B) {
			restore := setKernel(k)
			defer restore()
			if kernelName != k {
				b.Skip("not supported here")
			}
			b.SetBytes(dim * n)
			for b.Loop() {
				dotsInt8(q, codes, dim, n, out)
			}
		})
	}
}

func TestFilterAboveAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 15, 16, 17, 100, 256} {
		dots := make([]int32, n)
		units := make([]float32, n)
		for i := range dots {
			dots[i] = int32(rng.IntN(20000) - 10000)
			units[i] = rng.Float32()
		}
		for _, thr := range []float32{-1e9, -100, 0, 100, 1e9} {
			want := make([]int32, n)
			k := filterAboveGeneric(dots, units, thr, want, 0)
			got := make([]int32, n)
			g := filterAbove(dots, units, thr, got)
			require.Equal(t, want[:k], got[:g], "n %d thr %v", n, thr)
		}
	}
}
