package geom

import (
	"errors"
	"math"
)

// Similarity is x' = A*x - B*y + TX, y' = B*x + A*y + TY: rotation, uniform
// scale and translation, no shear and no reflection.
type Similarity struct{ A, B, TX, TY float64 }

// Apply maps a point.
func (s Similarity) Apply(p Point) Point {
	return Point{s.A*p.X - s.B*p.Y + s.TX, s.B*p.X + s.A*p.Y + s.TY}
}

// Scale is the transform's uniform scale factor.
func (s Similarity) Scale() float64 { return math.Hypot(s.A, s.B) }

// ErrDegenerate says the points do not determine a transform.
var ErrDegenerate = errors.New("degenerate point set")

// EstimateSimilarity returns the least-squares similarity mapping src onto
// dst (Umeyama's method, which in 2D has this closed form): it centres both
// sets, then a = Σ(x·x' + y·y')/Σ|p|², b = Σ(x·y' − y·x')/Σ|p|².
func EstimateSimilarity(src, dst []Point) (Similarity, error) {
	n := len(src)
	if n < 2 || n != len(dst) {
		return Similarity{}, ErrDegenerate
	}
	var msx, msy, mdx, mdy float64
	for i := range n {
		msx += src[i].X
		msy += src[i].Y
		mdx += dst[i].X
		mdy += dst[i].Y
	}
	fn := float64(n)
	msx, msy, mdx, mdy = msx/fn, msy/fn, mdx/fn, mdy/fn
	var num1, num2, den float64
	for i := range n {
		x, y := src[i].X-msx, src[i].Y-msy
		u, v := dst[i].X-mdx, dst[i].Y-mdy
		num1 += x*u + y*v
		num2 += x*v - y*u
		den += x*x + y*y
	}
	if den < 1e-9 {
		return Similarity{}, ErrDegenerate
	}
	a, b := num1/den, num2/den
	return Similarity{A: a, B: b, TX: mdx - (a*msx - b*msy), TY: mdy - (b*msx + a*msy)}, nil
}
