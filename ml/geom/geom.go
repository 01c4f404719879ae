// Package geom holds the small geometry the face pipeline needs: boxes and
// non-maximum suppression, the 5-point similarity transform used to align
// faces, and head pose from 2D landmarks against a 3D mean face.
package geom

import "math"

// Point is a 2D position in pixels.
type Point struct{ X, Y float64 }

// Box is an axis-aligned rectangle in pixels, corners (X1, Y1) top-left and
// (X2, Y2) bottom-right.
type Box struct{ X1, Y1, X2, Y2 float64 }

// W is the width.
func (b Box) W() float64 { return b.X2 - b.X1 }

// H is the height.
func (b Box) H() float64 { return b.Y2 - b.Y1 }

// Area is zero for an empty or inverted box.
func (b Box) Area() float64 { return math.Max(0, b.W()) * math.Max(0, b.H()) }

// Center is the middle of the box.
func (b Box) Center() Point { return Point{(b.X1 + b.X2) / 2, (b.Y1 + b.Y2) / 2} }

// IoU is intersection over union; 0 when the boxes do not overlap.
func (b Box) IoU(o Box) float64 {
	in := Box{math.Max(b.X1, o.X1), math.Max(b.Y1, o.Y1), math.Min(b.X2, o.X2), math.Min(b.Y2, o.Y2)}.Area()
	u := b.Area() + o.Area() - in
	if u <= 0 {
		return 0
	}
	return in / u
}

// Clamp limits the box to a w x h image.
func (b Box) Clamp(w, h float64) Box {
	return Box{clamp(b.X1, 0, w), clamp(b.Y1, 0, h), clamp(b.X2, 0, w), clamp(b.Y2, 0, h)}
}

// Scale grows (k > 1) or shrinks the box around its centre.
func (b Box) Scale(kx, ky float64) Box {
	c := b.Center()
	hw, hh := b.W()*kx/2, b.H()*ky/2
	return Box{c.X - hw, c.Y - hh, c.X + hw, c.Y + hh}
}

// BoundingBox of a set of points.
func BoundingBox(pts []Point) Box {
	if len(pts) == 0 {
		return Box{}
	}
	b := Box{pts[0].X, pts[0].Y, pts[0].X, pts[0].Y}
	for _, p := range pts[1:] {
		b.X1, b.Y1 = math.Min(b.X1, p.X), math.Min(b.Y1, p.Y)
		b.X2, b.Y2 = math.Max(b.X2, p.X), math.Max(b.Y2, p.Y)
	}
	return b
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
