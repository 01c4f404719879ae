package vision

import (
	"github.com/vigilhq/vigil/ml/geom"
	"github.com/vigilhq/vigil/ml/imgproc"
)

// paintPolygon returns a copy of img with the polygon filled in colour c
// (even-odd rule), e.g. to draw a mask over the lower face.
func paintPolygon(img *imgproc.RGB, poly []geom.Point, c [3]uint8) *imgproc.RGB {
	out := &imgproc.RGB{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)}
	bb := geom.BoundingBox(poly).Clamp(float64(img.W-1), float64(img.H-1))
	for y := int(bb.Y1); y <= int(bb.Y2); y++ {
		for x := int(bb.X1); x <= int(bb.X2); x++ {
			if inside(poly, float64(x), float64(y)) {
				i := (y*img.W + x) * 3
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c[0], c[1], c[2]
			}
		}
	}
	return out
}

func inside(poly []geom.Point, x, y float64) bool {
	in := false
	for i, j := 0, len(poly)-1; i < len(poly); j, i = i, i+1 {
		a, b := poly[i], poly[j]
		if (a.Y > y) != (b.Y > y) && x < (b.X-a.X)*(y-a.Y)/(b.Y-a.Y)+a.X {
			in = !in
		}
	}
	return in
}
