//go:build !amd64

package imgproc

type rowConsts struct {
	fy    [8]float32
	scale [3][8]float32
	bias  [3][8]float32
}

var haveAVX2 = false

func colourRowAVX2(dr, dg, db *float32, offs *int32, fxs *float32, n int, top, bot *uint8, k *rowConsts) {
	panic("imgproc: no vector kernel on this architecture")
}
