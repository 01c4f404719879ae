//go:build !amd64

package imgproc

// rowConsts are the per-row constants of colourRowAVX2, laid out as the
// kernel reads them: fy in every lane, the channel scale and bias in lanes
// 0..2 (R, G, B), and the lane permutation that moves the second tap there.
type rowConsts struct {
	fy      [8]float32
	chScale [8]float32
	chBias  [8]float32
	perm    [8]int32
}

var haveAVX2 = false

func colourRowAVX2(dr, dg, db *float32, offs *int32, fxs *float32, n int, top, bot *uint8, k *rowConsts) {
	panic("imgproc: no vector kernel on this architecture")
}

func warpRowAVX2(dr, dg, db *float32, offs *int32, fxs, fys *float32, n int, pix *uint8, stride int, k *rowConsts) {
	panic("imgproc: no vector kernel on this architecture")
}
