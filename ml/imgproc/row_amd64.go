package imgproc

import "golang.org/x/sys/cpu"

// rowConsts are the per-row constants of colourRowAVX2, laid out as the
// kernel reads them: fy in every lane, the channel scale and bias in lanes
// 0..2 (R, G, B), and the lane permutation that moves the second tap there.
type rowConsts struct {
	fy      [8]float32
	chScale [8]float32
	chBias  [8]float32
	perm    [8]int32
}

// haveAVX2 selects the vector kernel; CPUs without AVX2 and FMA (and other
// architectures) use colourRow alone. A variable so tests can compare both.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func colourRowAVX2(dr, dg, db *float32, offs *int32, fxs *float32, n int, top, bot *uint8, k *rowConsts)

//go:noescape
func warpRowAVX2(dr, dg, db *float32, offs *int32, fxs, fys *float32, n int, pix *uint8, stride int, k *rowConsts)
