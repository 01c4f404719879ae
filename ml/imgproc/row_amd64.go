package imgproc

import "golang.org/x/sys/cpu"

// rowConsts are the per-row constants of colourRowAVX2, each broadcast to
// eight lanes so the kernel reads them as vector operands.
type rowConsts struct {
	fy    [8]float32
	scale [3][8]float32 // per source channel R, G, B
	bias  [3][8]float32
}

// haveAVX2 selects the vector kernel; CPUs without AVX2 and FMA (and other
// architectures) use colourRow alone.
var haveAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func colourRowAVX2(dr, dg, db *float32, offs *int32, fxs *float32, n int, top, bot *uint8, k *rowConsts)
