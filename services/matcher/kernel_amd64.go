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

// dotsInt8VNNI needs dim to be a multiple of 64 and n a multiple of 4.
//
//go:noescape
func dotsInt8VNNI(q *int8, codes *int8, dim, n int, out *int32, qbias int32)

var hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI

// filterAboveAVX512 needs n to be a multiple of 16 and idx room for n entries.
//
//go:noescape
func filterAboveAVX512(dots *int32, units *float32, n int, thr float32, idx *int32) int

var hasAVX512Filter = cpu.X86.HasAVX512F && cpu.X86.HasPOPCNT

func filterAboveAsm(dots []int32, units []float32, thr float32, idx []int32) int {
	n := len(dots)
	main := n &^ 15
	k := 0
	if hasAVX512Filter && main > 0 && kernelName != "generic" {
		_ = units[main-1]
		_ = idx[main-1]
		k = filterAboveAVX512(&dots[0], &units[0], main, thr, &idx[0])
	} else {
		main = 0
	}
	return k + filterAboveGeneric(dots[main:], units[main:], thr, idx[k:], int32(main))
}

func init() { filterAbove = filterAboveAsm }

func init() {
	// VIGIL_MATCHER_KERNEL=generic|avx2 forces a path (tests compare all of them).
	want := os.Getenv("VIGIL_MATCHER_KERNEL")
	switch {
	case want == "generic":
	case hasVNNI && want != "avx2":
		dotsInt8, kernelName = dotsInt8DispatchVNNI, "avx512vnni"
	case cpu.X86.HasAVX2:
		dotsInt8, kernelName = dotsInt8Dispatch, "avx2"
	}
}

func dotsInt8DispatchVNNI(q []int8, codes []int8, dim, n int, out []int32) {
	if dim%64 != 0 || len(q) != dim || n < 4 {
		dotsInt8Dispatch(q, codes, dim, n, out)
		return
	}
	var sum int32
	for _, v := range q {
		sum += int32(v)
	}
	main := n &^ 3
	_ = codes[main*dim-1]
	_ = out[main-1]
	dotsInt8VNNI(&q[0], &codes[0], dim, main, &out[0], 128*sum)
	if main < n {
		dotsInt8Generic(q, codes[main*dim:], dim, n-main, out[main:])
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
	case "avx512vnni":
		if hasVNNI {
			dotsInt8, kernelName = dotsInt8DispatchVNNI, "avx512vnni"
		}
	}
	return func() { dotsInt8, kernelName = prevFn, prevName }
}
