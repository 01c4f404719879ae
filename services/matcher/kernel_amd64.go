package matcher

import (
	"os"

	"golang.org/x/sys/cpu"
)

// dotsInt8AVX2 needs dim to be a multiple of 32 and n a multiple of 4; the Go
// wrapper below hands the remainder rows to the generic kernel.
//
//go:noescape
func dotsInt8AVX2(q *int8, absq *int8, codes *int8, dim, n int, out *int32)

func init() {
	// VIGIL_MATCHER_KERNEL=generic forces the portable path (tests compare both).
	if cpu.X86.HasAVX2 && os.Getenv("VIGIL_MATCHER_KERNEL") != "generic" {
		dotsInt8 = dotsInt8Dispatch
		kernelName = "avx2"
	}
}

// absInt8 returns |q| (codes are clamped to [-127, 127], so this never overflows).
func absInt8(q []int8, dst []int8) {
	for i, v := range q {
		if v < 0 {
			v = -v
		}
		dst[i] = v
	}
}

func dotsInt8Dispatch(q []int8, codes []int8, dim, n int, out []int32) {
	if dim%32 != 0 || len(q) != dim || n < 4 {
		dotsInt8Generic(q, codes, dim, n, out)
		return
	}
	var absBuf [512]int8
	var absq []int8
	if dim <= len(absBuf) {
		absq = absBuf[:dim]
	} else {
		absq = make([]int8, dim)
	}
	absInt8(q, absq)
	main := n &^ 3
	_ = codes[main*dim-1]
	_ = out[main-1]
	dotsInt8AVX2(&q[0], &absq[0], &codes[0], dim, main, &out[0])
	if main < n {
		dotsInt8Generic(q, codes[main*dim:], dim, n-main, out[main:])
	}
}

// setKernel switches between implementations; tests use it to check both paths.
func setKernel(name string) (restore func()) {
	prevFn, prevName := dotsInt8, kernelName
	switch name {
	case "generic":
		dotsInt8, kernelName = dotsInt8Generic, "generic"
	case "avx2":
		if cpu.X86.HasAVX2 {
			dotsInt8, kernelName = dotsInt8Dispatch, "avx2"
		}
	}
	return func() { dotsInt8, kernelName = prevFn, prevName }
}
